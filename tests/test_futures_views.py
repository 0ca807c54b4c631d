"""The admin views with futures: open_positions_by_user and user_overview carry side, leverage and the
unrealized PnL of long and short perpetuals next to spot positions, as the same exact text on SQLite and
PostgreSQL."""

import datetime as dt
from decimal import Decimal as D

import pytest

from tradebot import db as dbmod
from tradebot.models import Position, User, UserConfig, UserState

pytestmark = pytest.mark.pg
T0 = dt.datetime(2026, 1, 5, 12, 0, 0)


def load():
    User.create(id=1, telegram_id=1001, username="alice", created_at=T0)
    User.create(id=2, telegram_id=1002, username="bob", created_at=T0)
    rows = [  # config id, user, symbol, market, leverage, last price, unrealized, funding paid
        (1, 1, "BTC/USDT", "spot", 1, D("30000"), D("-1.5"), D(0)),
        (2, 1, "BTC/USDT:USDT", "futures", 3, D("30000"), D("-60.0015"), D("0.099")),
        (3, 2, "BTC/USDT:USDT", "futures", 10, D("29000.5"), D("33.98"), D("-0.0123")),
    ]
    for cid, uid, sym, market, lev, last, upnl, funding in rows:
        UserConfig.create(id=cid, user=uid, exchange="binance", symbol=sym, budget=D(1000), market_type=market,
                          leverage=lev, created_at=T0, updated_at=T0)
        UserState.create(user=uid, config=cid, mode="paper", balance=D(1000), cash=D(700), equity=D(1000),
                         peak_equity=D(1000), last_price=last, unrealized_pnl=upnl, funding_paid=funding,
                         updated_at=T0)
    Position.create(id=1, user=1, config=1, exchange="binance", symbol="BTC/USDT", amount=D("0.00999"),
                    entry_price=D("30100"), cost_basis=D("301.2"), opened_at=T0)
    Position.create(id=2, user=1, config=2, exchange="binance", symbol="BTC/USDT:USDT", side="long", leverage=3,
                    amount=D("0.03"), entry_price=D("32000.05"), cost_basis=D("320.48"), margin=D("320.0005"),
                    liquidation_price=D("21493.36"), funding=D("0.099"), opened_at=T0)
    Position.create(id=3, user=2, config=3, exchange="binance", symbol="BTC/USDT:USDT", side="short", leverage=10,
                    amount=D("0.02"), entry_price=D("30699.5"), cost_basis=D("61.71"), margin=D("61.399"),
                    liquidation_price=D("33615.95"), funding=D("-0.0123"), opened_at=T0)


def _rows(url, sqls):
    dbmod.open_database(url)
    dbmod.migrate()
    load()
    try:
        return {sql: [tuple(str(v) if isinstance(v, D) else v for v in r) for r in dbmod.readonly_query(url, sql)[1]]
                for sql in sqls}
    finally:
        dbmod.close_database()


QUERIES = {
    "SELECT position_id, market_type, side, leverage, unrealized_pnl FROM open_positions_by_user "
    "ORDER BY position_id": [
        (1, "spot", "long", 1, "-1.5"),  # 0.00999 x 30000 - 301.2
        (2, "futures", "long", 3, "-60.0015"),  # 0.03 x (30000 - 32000.05)
        (3, "futures", "short", 10, "33.98"),  # -0.02 x (29000.5 - 30699.5)
    ],
    "SELECT username, futures_pairs, long_positions, short_positions, max_leverage, unrealized_pnl, funding_paid "
    "FROM user_overview ORDER BY user_id": [
        ("alice", 1, 2, 0, 3, "-61.5015", "0.099"),
        ("bob", 1, 0, 1, 10, "33.98", "-0.0123"),
    ],
}


def test_futures_columns_are_identical_exact_text_on_sqlite_and_postgres(sqlite_url, pg_url):
    lite, pg = _rows(sqlite_url, QUERIES), _rows(pg_url, QUERIES)
    for sql, expected in QUERIES.items():
        assert lite[sql] == expected, (sql, lite[sql])
        assert pg[sql] == expected, (sql, pg[sql])
