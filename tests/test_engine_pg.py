"""The engine on PostgreSQL: booking, breaker, reconcile and the daily summary use only portable SQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fixtures_engine import (
    MINUTE,
    REAL_START,
    ScriptedDecider,
    StubVault,
    flat_series,
    make_pair,
    make_user,
)
from tradebot import db as dbmod
from tradebot.engine.manager import BotManager
from tradebot.exchange.errors import ExchangeUnavailable
from tradebot.models import AIDecision, Notification, Order, RiskEvent, Trade, UserState

pytestmark = pytest.mark.pg


@pytest.fixture
def pg_engine(pg_url, replay_hub, clock, deciders):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    mgr = BotManager(replay_hub, lambda name: deciders[name], vault=StubVault(), clock=clock, max_workers=2)
    yield mgr
    mgr.shutdown(2)
    dbmod.close_database()


def test_engine_round_trips_breaker_and_reconcile_on_postgres(pg_engine, clock, deciders, replay_hub):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(REAL_START, 3000, 100.0)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted", max_consecutive_losses=2)
    t = clock.ms - clock.ms % MINUTE - MINUTE
    deciders["scripted"] = ScriptedDecider(
        {t + i * MINUTE: ("buy" if i % 2 == 0 else "sell") for i in range(6)}
    )
    pg_engine.start_pair(cfg.id)
    broker = replay_hub.broker("binance", "paper")
    broker.fault = "fill_then_drop"
    with pytest.raises(ExchangeUnavailable):
        pg_engine.run_cycle(cfg.id)
    for _ in range(5):
        clock.advance(1)
        pg_engine.run_cycle(cfg.id)
    assert Order.select().where(Order.status == "pending").count() == 0
    assert Trade.select().count() == 4 and set(broker.ledger) == {t.client_order_id for t in Trade.select()}
    assert RiskEvent.get().kind == "consecutive_losses"
    st = UserState.get(UserState.config == cfg.id)
    assert st.status == "paused" and st.equity == st.cash + st.holdings * st.last_price
    assert st.equity == Decimal(1000) + st.realized_pnl + st.unrealized_pnl
    assert AIDecision.select().where(AIDecision.outcome == "loss").count() == 2
    day = clock.ms // (24 * 60 * MINUTE)
    import datetime as dt

    assert pg_engine.daily_summary(dt.date(1970, 1, 1) + dt.timedelta(days=day)) == 1
    assert Notification.select().where(Notification.kind == "daily_summary").count() == 1
    assert pg_engine.reset_breaker(cfg.id) is True
