"""Isolation of pairs, error reporting once per change of state, crash-safe intents (in-process faults)."""

from __future__ import annotations

import json

import pytest

from tests.fixtures_engine import MINUTE, RaisingDecider, ScriptedDecider, make_pair, make_user
from tradebot.exchange.errors import ExchangeUnavailable
from tradebot.models import Notification, Order, Trade, UserState


def closed_ts(clock):
    return clock.ms - clock.ms % MINUTE - MINUTE


def test_a_pair_that_always_raises_leaves_the_others_trading_and_reports_once(engine, clock, deciders):
    deciders["raising"] = RaisingDecider()
    t = closed_ts(clock)
    script = {t + i * MINUTE: ("buy" if i % 2 == 0 else "sell") for i in range(10)}
    deciders["scripted"] = ScriptedDecider(script)
    u1, u2 = make_user(1), make_user(2)
    bad = make_pair(u1, "BTC/USDT", "1000", decider="raising", is_trading=True)
    good = [
        make_pair(u1, "ETH/USDT", "1000", decider="scripted", is_trading=True),
        make_pair(u2, "BTC/USDT", "500", decider="scripted", is_trading=True),
    ]
    for _ in range(10):
        for cfg in [bad, *good]:
            engine._job(cfg.id)  # the scheduler's entry point: never raises
        clock.advance(1)
    st = UserState.get(UserState.config == bad.id)
    assert st.status == "error" and st.error_count == 10 and "decider exploded" in st.last_error
    errors = list(Notification.select().where(Notification.kind == "pair_error"))
    assert len(errors) == 1 and errors[0].user_id == u1.id and errors[0].config_id == bad.id
    assert json.loads(errors[0].payload)["symbol"] == "BTC/USDT"
    for cfg in good:
        assert Trade.select().where(Trade.config == cfg.id).count() == 10
        assert UserState.get(UserState.config == cfg.id).last_error is None
    # recovery clears the error; a new failure is a new change of state -> one more event
    deciders["raising"].on = False
    clock.advance(1)
    engine._job(bad.id)
    assert UserState.get(UserState.config == bad.id).last_error is None
    deciders["raising"].on = True
    clock.advance(1)
    engine._job(bad.id)
    clock.advance(1)
    engine._job(bad.id)
    assert Notification.select().where(Notification.kind == "pair_error").count() == 2


def test_ambiguous_send_stays_pending_then_reconcile_books_it_once(engine, clock, deciders, replay_hub):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t: "buy", t + MINUTE: "buy"})
    broker = replay_hub.broker("binance", "paper")
    broker.fault = "fill_then_drop"  # the exchange filled it, we never heard back
    with pytest.raises(ExchangeUnavailable):
        engine.run_cycle(cfg.id)
    order = Order.get()
    assert order.status == "pending" and Trade.select().count() == 0
    clock.advance(1)
    engine.run_cycle(cfg.id)  # reconcile first: booked; the new buy signal sees the open position
    assert Order.get_by_id(order.id).status == "filled"
    assert Trade.select().count() == 1 and Trade.get().client_order_id == order.client_order_id
    assert broker.sends == {order.client_order_id: 1}  # never re-sent
    assert UserState.get(UserState.config == cfg.id).holdings == broker.ledger[order.client_order_id].net_base


def test_intent_never_sent_is_marked_failed(engine, clock, deciders, replay_hub):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    deciders["scripted"] = ScriptedDecider({closed_ts(clock): "buy"})
    broker = replay_hub.broker("binance", "paper")
    broker.fault = "unavailable"  # connection refused before the exchange saw it
    with pytest.raises(ExchangeUnavailable):
        engine.run_cycle(cfg.id)
    assert Order.get().status == "pending"
    engine.start()  # start-up reconcile
    try:
        assert Order.get().status == "failed" and Trade.select().count() == 0
    finally:
        engine.shutdown(5)


def test_insufficient_funds_fails_the_order_and_tells_the_user_once(engine, clock, deciders, replay_hub):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted", is_trading=True)
    t = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t: "buy", t + MINUTE: "buy"})
    broker = replay_hub.broker("binance", "paper")
    for _ in range(2):
        broker.fault = "insufficient"
        engine._job(cfg.id)
        clock.advance(1)
    assert [o.status for o in Order.select()] == ["failed", "failed"]
    errs = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "pair_error")]
    assert len(errs) == 1 and errs[0]["needs_action"] is True and "Insufficient" in errs[0]["message"]
