"""Every view of schema.sql and the brief's three admin queries return the same rows on
SQLite and PostgreSQL for the same data."""

import datetime as dt
from decimal import Decimal, InvalidOperation

import pytest

from tradebot import db as dbmod
from tradebot.models import AIDecision, LLMAnswer, Position, Trade, User, UserConfig, UserState

pytestmark = pytest.mark.pg

BRIEF_QUERIES = {
    "View All Users": "SELECT * FROM user_overview;",
    "Monitor Active Trading": """
SELECT
    u.username,
    uc.exchange,
    uc.symbol,
    us.equity,
    us.daily_pnl,
    uc.is_trading
FROM users u
JOIN user_configs uc ON u.id = uc.user_id
JOIN user_states us ON u.id = us.user_id
WHERE uc.is_trading = true;
""",
    "Performance by User": """
SELECT
    u.username,
    COUNT(t.id) as total_trades,
    SUM(t.pnl) as total_pnl,
    AVG(t.pnl) as avg_pnl
FROM users u
JOIN trades t ON u.id = t.user_id
GROUP BY u.username
ORDER BY total_pnl DESC;
""",
}

T0 = dt.datetime(2026, 1, 5, 12, 0, 0)
D = Decimal


def load_fixture():
    """A small but varied data set: 3 users, 5 pairs, buys and sells, open and closed positions."""
    users = [
        User.create(id=1, telegram_id=1001, username="alice", status="active", created_at=T0),
        User.create(id=2, telegram_id=1002, username="bob", status="active", created_at=T0),
        User.create(id=3, telegram_id=1003, username="carol", status="pending", created_at=T0),
    ]
    pairs = [
        (1, 1, "binance", "BTC/USDT", D("1000"), True, D("1050.25"), D("12.5")),
        (2, 1, "binance", "ETH/USDT", D("500"), False, D("480"), D("-20")),
        (3, 1, "bybit", "SOL/USDT", D("300"), True, D("315.00000001"), D("15")),
        (4, 2, "bybit", "ETH/USDT", D("12345678.12345678"), True, D("12345600.5"), D("-77.62345678")),
        (5, 3, "binance", "BTC/USDT", D("50"), False, D("50"), D("0")),
    ]
    for cid, uid, ex, sym, budget, trading, equity, daily in pairs:
        UserConfig.create(id=cid, user=uid, exchange=ex, symbol=sym, budget=budget, is_trading=trading,
                          created_at=T0, updated_at=T0)
        UserState.create(user=uid, config=cid, status="running" if trading else "stopped", mode="paper",
                         balance=budget, cash=budget, equity=equity, daily_pnl=daily, peak_equity=equity,
                         last_price=D("16541.77"), updated_at=T0)
    trades = [
        (1, 1, "buy", D("0.01"), D("16541.77"), None),
        (1, 1, "sell", D("0.00999"), D("17000"), D("4.41")),
        (1, 3, "buy", D("2"), D("10.5"), None),
        (1, 3, "sell", D("2"), D("10"), D("-1.0201")),
        (2, 4, "buy", D("1.5"), D("1196.13"), None),
        (2, 4, "sell", D("1.4985"), D("1200.01"), D("0.00000001")),
        (2, 4, "sell", D("0.5"), D("1100"), D("-50.5")),
    ]
    for i, (uid, cid, side, amount, price, pnl) in enumerate(trades, start=1):
        Trade.create(id=i, user=uid, config=cid, exchange="binance", symbol="BTC/USDT", side=side, amount=amount,
                     price=price, cost=amount * price, fee=D("0.01"), pnl=pnl, reason="signal",
                     executed_at=T0 + dt.timedelta(minutes=i))
    decisions = [
        (1, 1, "technical", "buy", 70, True, "profitable", True, D("4.41")),
        (2, 1, "technical", "hold", 40, False, None, None, None),
        (3, 1, "llm:gpt", "buy", 80, True, "loss", False, D("-1.0201")),
        (4, 2, "technical", "buy", 65, True, "profitable", True, D("0.00000001")),
        (5, 2, "technical", "sell", 90, True, None, None, None),
    ]
    for did, uid, provider, action, conf, executed, outcome, profitable, pnl in decisions:
        AIDecision.create(id=did, user=uid, config=None, symbol="BTC/USDT", provider=provider, action=action,
                          confidence=conf, executed=executed, outcome=outcome, profitable=profitable, pnl=pnl,
                          created_at=T0)
    llm_answers = [  # (user, provider, ok, input, output, cost, day)
        (1, "llm:gpt", True, 1200, 80, D("0.00039478"), dt.date(2024, 1, 1)),
        (1, "llm:gpt", False, 0, 0, D("0"), dt.date(2024, 1, 1)),
        (2, "llm:gpt", True, 900, 60, D("0.00000001"), dt.date(2024, 1, 2)),
        (1, "llm:gpt", True, 1000, 70, D("12.5"), dt.date(2024, 1, 2)),
    ]
    for i, (uid, provider, ok, tin, tout, cost, day) in enumerate(llm_answers, start=1):
        LLMAnswer.create(id=i, user=uid, provider=provider, model="gpt-4o", prompt_hash=f"h{i}", ok=ok,
                         input_tokens=tin, output_tokens=tout, cost=cost, day=day, created_at=T0)
    AIDecision.update(llm_answer=1).where(AIDecision.id == 3).execute()
    Position.create(id=1, user=1, config=1, exchange="binance", symbol="BTC/USDT", amount=D("0.0299"),
                    entry_price=D("16000"), cost_basis=D("478.4"), status="open", opened_at=T0)
    Position.create(id=2, user=2, config=4, exchange="bybit", symbol="ETH/USDT", amount=D("1"),
                    entry_price=D("1196.13"), cost_basis=D("1197.33"), status="closed", opened_at=T0)
    Position.create(id=3, user=2, config=4, exchange="bybit", symbol="ETH/USDT", amount=D("0.5"),
                    entry_price=D("1100"), cost_basis=D("550.55"), status="open", opened_at=T0)
    return users


def norm(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value)).quantize(Decimal("0.000001"))
    if isinstance(value, str):
        try:
            return Decimal(value).quantize(Decimal("0.000001"))
        except InvalidOperation:
            return value
    return value


def run_all(url):
    dbmod.open_database(url)
    dbmod.migrate()
    load_fixture()
    out = {}
    names = [name for name, _ in dbmod.view_statements()]
    queries = {f"view {n}": f"SELECT * FROM {n}" for n in names} | BRIEF_QUERIES
    for label, sql in queries.items():
        columns, rows = dbmod.readonly_query(url, sql)
        out[label] = (columns, [tuple(norm(v) for v in row) for row in rows])
    dbmod.close_database()
    return out


def test_views_and_brief_queries_match_on_sqlite_and_postgres(sqlite_url, pg_url):
    lite = run_all(sqlite_url)
    pg = run_all(pg_url)
    assert set(lite) == set(pg)
    assert len(lite) >= 7
    for label in lite:
        cols_l, rows_l = lite[label]
        cols_p, rows_p = pg[label]
        assert cols_l == cols_p, label
        assert rows_l, f"{label} returned no rows: the fixture does not exercise it"
        # NULL sorts last in SQLite DESC and first in PostgreSQL: compare as multisets
        key = lambda r: tuple((v is None, str(v)) for v in r)  # noqa: E731
        assert sorted(rows_l, key=key) == sorted(rows_p, key=key), label
    # spot-check real values, not just agreement
    overview = {r[2]: r for r in lite["view user_overview"][1]}
    assert overview["alice"][4] == 3 and overview["alice"][5] == 2
    perf = {r[0]: r for r in lite["Performance by User"][1]}
    assert perf["alice"][1] == 4 and perf["alice"][2] == Decimal("3.389900")
    stats = {(r[0], r[2]): r for r in lite["view ai_provider_stats_by_user"][1]}
    assert stats[(1, "technical")][3] == 2 and stats[(1, "technical")][10] == Decimal("100.00")


def _raw(url, sqls):
    dbmod.open_database(url)
    dbmod.migrate()
    load_fixture()
    try:
        return {sql: [tuple(r) for r in dbmod.readonly_query(url, sql)[1]] for sql in sqls}
    finally:
        dbmod.close_database()


def test_money_in_the_views_is_the_same_exact_decimal_text_on_both_engines(sqlite_url, pg_url):
    """No '1000.0' (a SQLite float) next to '999.60981514': plain exact text, identical on both engines."""
    queries = {
        "SELECT username, total_balance, total_equity, total_pnl, daily_pnl FROM user_overview ORDER BY user_id": [
            ("alice", "1800", "1845.25000001", "45.25000001", "7.5"),
            ("bob", "12345678.12345678", "12345600.5", "-77.62345678", "-77.62345678"),
            ("carol", "50", "50", "0", "0"),
        ],
        "SELECT position_id, unrealized_pnl FROM open_positions_by_user ORDER BY position_id": [
            (1, "16.198923"), (3, "7720.335"),
        ],
        "SELECT user_id, provider, total_pnl FROM ai_provider_stats_by_user ORDER BY user_id, provider": [
            (1, "llm:gpt", "-1.0201"), (1, "technical", "4.41"), (2, "technical", "0.00000001"),
        ],
        "SELECT provider, llm_calls, llm_errors, input_tokens, output_tokens, llm_cost "
        "FROM ai_provider_stats_by_user WHERE provider = 'llm:gpt'": [
            ("llm:gpt", 3, 1, 2200, 150, "12.50039478"),
        ],
        "SELECT CAST(day AS TEXT), provider, calls, errors, input_tokens, output_tokens, cost "
        "FROM llm_usage_daily ORDER BY day": [
            ("2024-01-01", "llm:gpt", 2, 1, 1200, 80, "0.00039478"),
            ("2024-01-02", "llm:gpt", 2, 0, 1900, 130, "12.50000001"),
        ],
    }
    lite, pg = _raw(sqlite_url, queries), _raw(pg_url, queries)
    for sql, expected in queries.items():
        assert lite[sql] == expected, sql
        assert pg[sql] == expected, sql


def test_admin_users_prints_the_views_numbers(sqlite_url):
    from tradebot import admin

    dbmod.open_database(sqlite_url)
    dbmod.migrate()
    load_fixture()
    try:
        rows = {r[2]: r for r in admin.list_users()}
    finally:
        dbmod.close_database()
    assert rows["alice"][6:] == ("1845.25000001", "45.25000001")
    assert rows["carol"][6:] == ("50", "0")
