"""The prepared statements behind every chat message and /status (services/chat_rows.py) return exactly what
the peewee queries they replace returned, on SQLite and PostgreSQL, and /status reads with one statement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from cryptography.fernet import Fernet

from tests.fixtures_telegram import StubApp, StubHub, build_manager, make_cfg
from tradebot import db as dbmod
from tradebot import services as svc
from tradebot.models import ExchangeCredential, Position, Trade, User, UserConfig, UserState, db
from tradebot.services.chat_rows import (
    last_closed_positions,
    notify_of,
    open_positions,
    pairs_with_rows,
    position_fees,
    trade_figures,
    user_by_telegram_id,
    user_credentials,
    user_pairs,
)
from tradebot.vault import Vault

T0 = dt.datetime(2026, 1, 5, 12, 0, 0)


def load() -> User:
    alice = User.create(telegram_id=10_000_000_001, username="alice", first_name="Alice", created_at=T0)
    User.create(telegram_id=2, username="bob", created_at=T0)
    ExchangeCredential.create(user=alice, exchange="binance", network="paper")
    # added in this order: the second was created first; the third has no state row and no credential
    a = UserConfig.create(user=alice, exchange="binance", symbol="ETH/USDT", budget=D("12345678.12345678"),
                          created_at=T0 + dt.timedelta(seconds=5), updated_at=T0)
    b = UserConfig.create(user=alice, exchange="binance", symbol="BTC/USDT:USDT", budget=D("500"),
                          market_type="futures", leverage=3, created_at=T0, updated_at=T0)
    UserConfig.create(user=alice, exchange="bybit", symbol="SOL/USDT", budget=D("0.1"), is_trading=True,
                      created_at=T0 + dt.timedelta(seconds=9), updated_at=T0)
    for cfg, equity in ((a, D("12345678.12345679")), (b, D("-0.00000001"))):
        UserState.create(user=alice, config=cfg, mode="paper", balance=cfg.budget, cash=cfg.budget, equity=equity,
                         peak_equity=equity, breaker_until=T0, last_error="boom", updated_at=T0)
    # the futures pair: a closed long and an open short (the view shows the open one)
    for side, status in (("long", "closed"), ("short", "open")):
        Position.create(user=alice, config=b, exchange="binance", symbol=b.symbol, side=side, leverage=3,
                        amount=D("0.01"), entry_price=D("30000"), cost_basis=D("100"), status=status, opened_at=T0)
    return alice


def _peewee(user: User):
    configs = list(UserConfig.select().where(UserConfig.user == user.id).order_by(UserConfig.created_at,
                                                                                   UserConfig.id))
    out = []
    for c in configs:
        state = UserState.get_or_none(UserState.config == c.id)
        cred = ExchangeCredential.get_or_none((ExchangeCredential.user == user.id)
                                              & (ExchangeCredential.exchange == c.exchange))
        pos = (Position.select().where((Position.config == c.id) & (Position.status == "open"))
               .order_by(Position.id.desc()).first())
        out.append((*(None if m is None else m.__data__ for m in (c, state, cred)), pos and pos.side))
    return out


def _check_same_rows():
    alice = load()
    got = [(*(None if m is None else m.__data__ for m in row[:3]), row[3]) for row in pairs_with_rows(alice.id)]
    assert got == _peewee(alice)
    assert [(c.symbol, side) for c, _s, _x, side in pairs_with_rows(alice.id)] == [
        ("BTC/USDT:USDT", "short"), ("ETH/USDT", None), ("SOL/USDT", None)]
    assert pairs_with_rows(alice.id)[1][1].equity == D("12345678.12345679")  # money exact
    assert pairs_with_rows(alice.id)[2][1:] == (None, None, None)
    user = user_by_telegram_id(10_000_000_001)
    assert user.__data__ == User.get(User.telegram_id == 10_000_000_001).__data__
    assert user_by_telegram_id(3) is None
    assert pairs_with_rows(User.get(User.telegram_id == 2).id) == []


def _check_read_commands_rows():
    """The statements behind /config, /position and /mystats against the peewee queries they replace."""
    alice = load()
    ExchangeCredential.create(user=alice, exchange="bybit", network="testnet", api_key_enc="k", secret_enc="s")
    configs = list(UserConfig.select().where(UserConfig.user == alice.id).order_by(UserConfig.created_at,
                                                                                   UserConfig.id))
    assert [c.__data__ for c in user_pairs(alice.id)] == [c.__data__ for c in configs]
    creds = ExchangeCredential.select().where(ExchangeCredential.user == alice.id).order_by(ExchangeCredential.exchange)
    assert [c.__data__ for c in user_credentials(alice.id)] == [c.__data__ for c in creds]
    assert user_pairs(User.get(User.telegram_id == 2).id) == []
    eth, btc, _sol = configs[1], configs[0], configs[2]
    for config, pnl, fee in ((eth, None, "0.00000001"), (eth, "1234567.87654321", "0.5"), (btc, "-0.00000003", "0"),
                             (None, "7", "1")):  # the last: a fill of a removed pair
        Trade.create(user=alice, config=config, exchange="binance", symbol="X/USDT", side="sell", amount=D(1),
                     price=D(1), cost=D(1), fee=D(fee), pnl=None if pnl is None else D(pnl))
    Trade.create(user=User.get(User.telegram_id == 2), exchange="binance", symbol="X/USDT", side="sell",
                 amount=D(1), price=D(1), cost=D(1), fee=D(9), pnl=D(9))  # someone else's
    want = sorted(((t.config_id, t.pnl, t.fee) for t in Trade.select().where(Trade.user == alice.id)), key=str)
    assert sorted(trade_figures(alice.id), key=str) == want
    assert (eth.id, D("1234567.87654321"), D("0.5")) in trade_figures(alice.id)  # money exact
    UserState.update(last_price=D("29999.12345678")).where(UserState.config == btc.id).execute()
    got = [(p.__data__, last) for p, last in open_positions(alice.id)]
    assert got == [(p.__data__, D("29999.12345678")) for p in Position.select().where(
        (Position.user == alice.id) & (Position.status == "open"))]
    closed = Position.create(user=alice, config=eth, exchange="binance", symbol=eth.symbol, side="long", leverage=1,
                             amount=D(1), entry_price=D(1), cost_basis=D(1), status="closed", opened_at=T0,
                             closed_at=T0 + dt.timedelta(hours=1), exit_price=D("1.5"), realized_pnl=D("0.5"))
    for fee in ("0.00000001", "0.1"):
        Trade.create(user=alice, config=eth, position=closed, exchange="binance", symbol="X/USDT", side="sell",
                     amount=D(1), price=D(1), cost=D(1), fee=D(fee))
    older = Position.get((Position.user == alice.id) & (Position.status == "closed") & (Position.id != closed.id))
    Position.update(closed_at=T0).where(Position.id == older.id).execute()
    assert [p.id for p in last_closed_positions(alice.id, None, 10)] == [closed.id, older.id]  # newest first
    assert [p.__data__ for p in last_closed_positions(alice.id, None, 1)] == [Position.get_by_id(closed.id).__data__]
    assert [p.id for p in last_closed_positions(alice.id, [btc.id], 10)] == [older.id]
    assert last_closed_positions(alice.id, [], 10) == []
    assert position_fees(alice.id, [closed.id]) == {closed.id: D("0.10000001")}
    assert position_fees(alice.id, None) == {closed.id: D("0.10000001")}
    assert position_fees(User.get(User.telegram_id == 2).id, [closed.id]) == {}  # only the user's own fills
    assert notify_of(alice.id) is True
    User.update(notify=False).where(User.id == alice.id).execute()
    assert notify_of(alice.id) is False


def test_prepared_chat_rows_match_peewee_on_sqlite(database):
    _check_same_rows()


def test_prepared_read_command_rows_match_peewee_on_sqlite(database):
    _check_read_commands_rows()


@pytest.mark.pg
def test_prepared_read_command_rows_match_peewee_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    try:
        _check_read_commands_rows()
    finally:
        dbmod.close_database()


@pytest.mark.pg
def test_prepared_chat_rows_match_peewee_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    try:
        _check_same_rows()
    finally:
        dbmod.close_database()


def _selects(fn):
    seen: list[str] = []
    conn = db.connection()
    conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def test_a_status_reads_the_sender_and_all_pairs_in_two_statements(database):
    hub = StubHub()
    vault = Vault([Fernet.generate_key()], "test")
    services = svc.Services(StubApp(make_cfg(), vault, hub, build_manager(hub, vault)))
    alice = load()
    views = []

    def status():
        user = services.authorize(alice.telegram_id, "alice", "Alice", names=True)
        views.extend(services.status(user))

    selects = _selects(status)
    assert len(selects) == 2, selects
    one = []
    selects = _selects(lambda: one.extend(services.status(alice, "btc/usdt:usdt")))
    assert len(selects) == 2, selects  # the pairs to find it among, the pairs with their rows
    assert [(v.symbol, v.equity, v.side) for v in one] == [("BTC/USDT:USDT", D("-0.00000001"), "short")]
    assert [(v.symbol, v.equity, v.status, v.side) for v in views] == [
        ("BTC/USDT:USDT", D("-0.00000001"), "stopped", "short"),
        ("ETH/USDT", D("12345678.12345679"), "stopped", "flat"),
        ("SOL/USDT", D("0.1"), "running", "flat"),
    ]


def test_config_position_and_mystats_read_in_a_few_statements_and_add_up(database):
    """However many pairs and fills: /mystats used to read every fill twice and once per pair, as models."""
    hub = StubHub()
    vault = Vault([Fernet.generate_key()], "test")
    services = svc.Services(StubApp(make_cfg(), vault, hub, build_manager(hub, vault)))
    alice = load()
    configs = list(UserConfig.select().where(UserConfig.user == alice.id).order_by(UserConfig.id))
    for i in range(30):
        Trade.create(user=alice, config=configs[i % 3], exchange="binance", symbol=configs[i % 3].symbol,
                     side="sell", amount=D(1), price=D(1), cost=D(1), fee=D("0.01"), pnl=D(i - 10))
    Trade.create(user=alice, config=None, exchange="binance", symbol="OLD/USDT", side="sell", amount=D(1),
                 price=D(1), cost=D(1), fee=D("0.25"), pnl=D("-2.5"))
    assert len(_selects(lambda: services.config_view(alice))) == 3  # credentials, pairs, notify
    assert len(_selects(lambda: services.positions(alice))) == 2  # pairs, open positions with prices
    stats = []
    assert len(_selects(lambda: stats.append(services.stats(alice)))) == 2  # fills, pairs with their states
    view = stats[0]
    assert [r.label for r in view.pairs] == ["BTC/USDT:USDT (binance)", "ETH/USDT (binance)",
                                                "SOL/USDT (bybit)", "Removed pairs"]
    assert view.total.fills == 31 and sum(r.fills for r in view.pairs) == 31
    assert view.total.fees == D("0.55") and view.total.realized_pnl == D(sum(range(-10, 20))) - D("2.5")
    assert view.total.realized_pnl == sum((r.realized_pnl for r in view.pairs), D(0))
    (pos,) = services.positions(alice)
    assert (pos.symbol, pos.last_price) == ("BTC/USDT:USDT", None)  # no price in its state yet
    UserState.update(last_price=D("30100.5")).where(UserState.config == configs[1].id).execute()
    (pos,) = services.positions(alice)
    assert pos.last_price == D("30100.5") and pos.unrealized_pnl == D("0.01") * D("30100.5") - D("100")
    assert services.positions(alice, [configs[0]]) == []  # only the pairs asked for


def _check_list_users():
    alice = load()
    UserConfig.update(is_trading=True).where(UserConfig.symbol == "ETH/USDT").execute()
    views = svc.list_users()
    assert [(v.telegram_id, v.pairs, v.trading, v.is_admin) for v in views] == [
        (10_000_000_001, 3, 2, False), (2, 0, 0, False)]  # one query, in registration order
    User.update(status="blocked").where(User.id == alice.id).execute()
    assert [v.telegram_id for v in svc.list_users("blocked")] == [10_000_000_001]
    assert svc.list_users("pending") == []


def test_list_users_counts_pairs_in_one_query_on_sqlite(database):
    _check_list_users()
    assert len(_selects(svc.list_users)) == 1


@pytest.mark.pg
def test_list_users_counts_pairs_in_one_query_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    try:
        _check_list_users()
    finally:
        dbmod.close_database()
