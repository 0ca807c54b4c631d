"""Crash-safe intents for futures: a short whose answer was lost is looked up by client id and booked once
(never re-sent); an intent that never reached the exchange fails and leaves the book flat; a closing order
lost the same way is booked as the close."""

from __future__ import annotations

import pytest

from tests.fixtures_engine import MINUTE, ScriptedDecider, make_pair, make_user
from tradebot.exchange.errors import ExchangeUnavailable
from tradebot.models import Order, Position, Trade, UserState


def closed_ts(clock):
    return clock.ms - clock.ms % MINUTE - MINUTE


def _pair(user):
    return make_pair(user, "BTC/USDT:USDT", "1000", decider="scripted", market_type="futures", leverage=3)


def test_lost_answer_of_a_short_then_of_its_close_are_booked_once(engine, clock, deciders, replay_hub):
    cfg = _pair(make_user(1))
    t = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t: "short", t + MINUTE: "short", t + 2 * MINUTE: "close"})
    broker = replay_hub.broker("binance", "paper")
    broker.fault = "fill_then_drop"
    with pytest.raises(ExchangeUnavailable):
        engine.run_cycle(cfg.id)
    opening = Order.get()
    assert opening.status == "pending" and opening.side == "sell" and Trade.select().count() == 0
    clock.advance(1)
    engine.run_cycle(cfg.id)  # reconcile books the short; the second "short" sees the position: no order
    assert Order.get_by_id(opening.id).status == "filled" and Order.select().count() == 1
    pos = Position.get(Position.config == cfg.id)
    fill = broker.ledger[opening.client_order_id]
    assert (pos.side, pos.amount, pos.entry_price, pos.margin) == ("short", fill.amount, fill.price, fill.cost / 3)
    clock.advance(1)
    broker.fault = "fill_then_drop"
    with pytest.raises(ExchangeUnavailable):
        engine.run_cycle(cfg.id)  # the close (a reduce-only buy) is sent, its answer lost
    closing = Order.select().order_by(Order.id.desc()).get()
    assert closing.side == "buy" and closing.status == "pending"
    clock.advance(1)
    engine.run_cycle(cfg.id)
    assert Order.get_by_id(closing.id).status == "filled"
    assert Position.get_by_id(pos.id).status == "closed"
    assert broker.sends == {opening.client_order_id: 1, closing.client_order_id: 1}  # never re-sent
    trades = list(Trade.select().order_by(Trade.id))
    assert [t.side for t in trades] == ["sell", "buy"] and trades[1].pnl is not None
    state = UserState.get(UserState.config == cfg.id)
    assert state.holdings == 0 and state.cash == state.equity == 1000 + trades[1].pnl


def test_a_futures_intent_that_never_reached_the_exchange_fails_flat(engine, clock, deciders, replay_hub):
    cfg = _pair(make_user(1))
    deciders["scripted"] = ScriptedDecider({closed_ts(clock): "short"})
    broker = replay_hub.broker("binance", "paper")
    broker.fault = "unavailable"
    with pytest.raises(ExchangeUnavailable):
        engine.run_cycle(cfg.id)
    engine.start()  # start-up reconcile
    try:
        assert Order.get().status == "failed" and Trade.select().count() == 0
        assert not Position.select().exists()
        assert UserState.get(UserState.config == cfg.id).cash == 1000
    finally:
        engine.shutdown(5)
