"""Stop-loss / take-profit and the circuit breaker through the real cycle (replayed candles, test clock)."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.fixtures_engine import MINUTE, REAL_START, ScriptedDecider, flat_series, make_pair, make_user
from tradebot.models import Notification, Order, RiskEvent, Trade, UserState
from tradebot.strategy.base import Candle

D = Decimal


def closed_ts(clock):
    return clock.ms - clock.ms % MINUTE - MINUTE


def kinds(**where):
    q = Notification.select().order_by(Notification.id)
    return [n.kind for n in q]


def test_take_profit_and_stop_loss_fire_on_the_first_candle_that_reaches_them(
    engine, clock, deciders, replay_hub
):
    """Hourly cycles: the exit is found on the right 1m candle inside the hour, SL before TP."""
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted", interval_seconds=3600)
    t0 = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t0: "buy"})
    engine.run_cycle(cfg.id)
    buy = Trade.get()
    entry = buy.price
    sl, tp = float(entry * D("0.98")), float(entry * D("1.05"))
    series = replay_hub.market_data._series("BTC/USDT")
    i0 = (t0 - series[0].ts) // MINUTE + 1
    expect = None
    for c in series[i0:]:
        if c.low <= sl:
            expect = ("stop_loss", c.ts)
            break
        if c.high >= tp:
            expect = ("take_profit", c.ts)
            break
    assert expect is not None
    out = None
    for _ in range(24 * 40):
        clock.advance(60)
        out = engine.run_cycle(cfg.id)
        if out["exit"]:
            break
    reason, _price, candle_ts = out["exit"]
    assert (reason, candle_ts) == expect
    sell = Trade.select().where(Trade.side == "sell").get()
    assert sell.reason == reason and Order.get(Order.client_order_id == sell.client_order_id).reason == reason
    closed = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "trade_closed")]
    assert closed[0]["reason"] == reason and D(closed[0]["pnl"]) == sell.pnl


def test_stop_loss_wins_when_one_candle_spans_both_levels(engine, clock, deciders, replay_hub):
    start = REAL_START
    series = flat_series(start, 2000, 100.0)
    k = (clock.ms - start) // MINUTE  # first candle not yet closed
    series[k] = Candle(series[k].ts, 100.0, 110.0, 90.0, 100.0, 1.0)  # spans both SL (98) and TP (105)
    replay_hub.market_data.series["BTC/USDT"] = series
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    deciders["scripted"] = ScriptedDecider({closed_ts(clock): "buy"})
    engine.run_cycle(cfg.id)
    clock.advance(1)
    out = engine.run_cycle(cfg.id)
    assert out["exit"][0] == "stop_loss" and out["exit"][2] == series[k].ts


def test_breaker_trips_after_5_consecutive_losses_pauses_and_resumes_after_cooldown(
    engine, clock, deciders, replay_hub
):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(
        REAL_START, 3000, 100.0
    )  # every round trip loses fees
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    other = make_pair(user, "ETH/USDT", "1000", decider="technical")  # the user's other pair is not paused
    engine.start_pair(cfg.id)
    t = closed_ts(clock)
    script = {}
    for i in range(6):
        script[t + 2 * i * MINUTE] = "buy"
        script[t + (2 * i + 1) * MINUTE] = "sell"
    deciders["scripted"] = ScriptedDecider(script)
    outs = []
    for _ in range(12):
        outs.append(engine.run_cycle(cfg.id))
        engine.run_cycle(other.id)
        clock.advance(1)
    sells = list(Trade.select().where((Trade.side == "sell") & (Trade.config == cfg.id)).order_by(Trade.id))
    assert len(sells) == 5 and all(s.pnl < 0 for s in sells)
    assert outs[10]["skipped"] == "breaker"  # the 6th buy is refused
    st = UserState.get(UserState.config == cfg.id)
    assert st.status == "paused" and st.breaker_until is not None
    ev = RiskEvent.get()
    assert ev.scope == "pair" and ev.kind == "consecutive_losses" and ev.value == 5
    assert kinds().count("breaker_tripped") == 1
    trip = json.loads(Notification.get(Notification.kind == "breaker_tripped").payload)
    assert trip["scope"] == "pair" and trip["symbol"] == "BTC/USDT"
    # still paused 59 minutes after the trip, running again after 60
    trip_ms = int(ev.until.replace(tzinfo=__import__("datetime").UTC).timestamp() * 1000) - 60 * MINUTE
    deciders["scripted"].script = {}
    clock.ms = trip_ms + 59 * MINUTE
    deciders["scripted"].script[closed_ts(clock)] = "buy"
    assert engine.run_cycle(cfg.id)["skipped"] == "breaker"
    clock.ms = trip_ms + 60 * MINUTE + 1000
    deciders["scripted"].script[closed_ts(clock)] = "buy"
    out = engine.run_cycle(cfg.id)
    assert out["orders"] == 1, (out, kinds(), list(Notification.select().dicts()))
    assert kinds().count("breaker_reset") == 1
    assert UserState.get(UserState.config == cfg.id).status == "running"


def test_breaker_trips_on_daily_loss_while_holding_and_resumes_after_cooldown(
    engine, clock, deciders, replay_hub
):
    start = REAL_START
    k = (clock.ms - start) // MINUTE
    series = flat_series(start, 3000, 100.0)
    for i in range(k + 1, 3000):  # the price falls 10% right after the buy and stays there
        series[i] = Candle(series[i].ts, 90.0, 90.0, 90.0, 90.0, 1.0)
    replay_hub.market_data.series["BTC/USDT"] = series
    user = make_user(1)
    cfg = make_pair(
        user, "BTC/USDT", "1000", decider="scripted", max_position_percent=D(100), stop_loss_percent=D(20)
    )
    t = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t: "buy", t + 4 * MINUTE: "sell", t + 5 * MINUTE: "buy"})
    engine.run_cycle(cfg.id)
    assert Trade.select().count() == 1
    clock.advance(2)
    out = engine.run_cycle(cfg.id)  # marks at 90: -10% of the budget today
    assert out["trip"] is not None and out["trip"].kind == "daily_loss"
    assert RiskEvent.get().kind == "daily_loss"
    clock.advance(2)
    assert engine.run_cycle(cfg.id)["orders"] == 1  # exits stay allowed while paused
    clock.advance(1)
    assert engine.run_cycle(cfg.id)["skipped"] == "breaker"  # ... new positions do not
    clock.advance(60)
    deciders["scripted"].script[closed_ts(clock)] = "buy"
    out = engine.run_cycle(cfg.id)
    assert out["orders"] == 1 and out["trip"] is None  # resumed; the paid-for loss does not re-trip
    assert kinds().count("breaker_tripped") == 1 and kinds().count("breaker_reset") == 1


def test_user_reset_clears_the_breaker(engine, clock, deciders, replay_hub):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(REAL_START, 3000, 100.0)
    user = make_user(1)
    cfg = make_pair(
        user, "BTC/USDT", "1000", decider="scripted", max_consecutive_losses=1, cooldown_minutes=0
    )
    t = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t: "buy", t + MINUTE: "sell", t + 2 * MINUTE: "buy"})
    engine.run_cycle(cfg.id)
    clock.advance(1)
    assert engine.run_cycle(cfg.id)["orders"] == 1
    clock.advance(1)
    assert engine.run_cycle(cfg.id)["skipped"] == "breaker"  # cooldown 0 = until reset
    assert engine.reset_breaker(cfg.id) is True
    assert UserState.get(UserState.config == cfg.id).breaker_until is None
    deciders["scripted"].script[closed_ts(clock) + MINUTE] = "buy"
    clock.advance(1)
    assert engine.run_cycle(cfg.id)["orders"] == 1
    assert kinds().count("breaker_reset") == 1


def test_a_pair_never_spends_more_than_its_free_budget(engine, clock, deciders, replay_hub):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(REAL_START, 3000, 100.0)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "50", decider="scripted", max_position_percent=D(100))
    deciders["scripted"] = ScriptedDecider({closed_ts(clock): "buy"})
    engine.run_cycle(cfg.id)
    st = UserState.get(UserState.config == cfg.id)
    buy = Trade.get()
    assert buy.cost <= D(50) and st.cash >= 0


def test_user_scope_breaker_trips_on_a_streak_across_pairs_and_resets(engine, clock, deciders, replay_hub):
    flat = flat_series(REAL_START, 3000, 100.0)
    replay_hub.market_data.series["BTC/USDT"] = flat
    replay_hub.market_data.series["ETH/USDT"] = flat
    user = make_user(1)
    a = make_pair(user, "BTC/USDT", "1000", decider="scripted", max_consecutive_losses=0)
    b = make_pair(user, "ETH/USDT", "1000", decider="scripted", max_consecutive_losses=0)
    t = closed_ts(clock)
    script = {}
    for i in range(4):
        script[t + 2 * i * MINUTE] = "buy"
        script[t + (2 * i + 1) * MINUTE] = "sell"
    deciders["scripted"] = ScriptedDecider(script)
    for _ in range(8):  # 4 losing round trips on each pair, interleaved: 8 losses in a row across 2 pairs
        engine.run_cycle(a.id)
        engine.run_cycle(b.id)
        clock.advance(1)
    # the user scope is checked before opening a position: after 6 losses (>= 5, on 2 pairs) the next buys
    # of both pairs are refused
    assert Trade.select().where(Trade.side == "sell").count() == 6
    assert Trade.select().where(Trade.side == "buy").count() == 6
    ev = RiskEvent.get()
    assert ev.scope == "user" and ev.kind == "consecutive_losses" and ev.config_id is None
    assert [
        json.loads(n.payload)["scope"]
        for n in Notification.select().where(Notification.kind == "breaker_tripped")
    ] == ["user"]
    assert RiskEvent.select().count() == 1
    assert engine.reset_breaker(a.id) is True
    deciders["scripted"].script[closed_ts(clock) + MINUTE] = "buy"
    clock.advance(1)
    assert engine.run_cycle(b.id)["orders"] == 1


def test_a_pair_below_the_exchange_minimum_is_told_once_in_plain_words(engine, clock, deciders, replay_hub):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(REAL_START, 3000, 100.0)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "10", decider="scripted")  # 30% of 10 = 3 USDT < 5 USDT minimum
    t = closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t + i * MINUTE: "buy" for i in range(3)})
    for _ in range(3):
        assert engine.run_cycle(cfg.id)["skipped"] == "below_minimum"
        clock.advance(1)
    errs = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "pair_error")]
    assert len(errs) == 1 and errs[0]["needs_action"] is True
    assert "below the exchange minimum order of 5" in errs[0]["message"] and "3.00 USDT" in errs[0]["message"]
    assert Order.select().count() == 0


def test_stop_loss_fires_on_the_candle_whose_low_reaches_it(engine, clock, deciders, replay_hub):
    start = REAL_START
    series = flat_series(start, 3000, 100.0)
    k = (clock.ms - start) // MINUTE  # first candle after the buy
    series[k + 3] = Candle(
        series[k + 3].ts, 100.0, 100.5, 98.5, 99.0, 1.0
    )  # close to the stop, not through it
    series[k + 7] = Candle(series[k + 7].ts, 99.0, 99.2, 97.9, 99.1, 1.0)  # wick through 98
    replay_hub.market_data.series["BTC/USDT"] = series
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted", interval_seconds=600)
    deciders["scripted"] = ScriptedDecider({closed_ts(clock): "buy"})
    engine.run_cycle(cfg.id)
    clock.advance(10)  # one 10-minute cycle later: candles k .. k+9 since the last cycle
    out = engine.run_cycle(cfg.id)
    assert out["exit"] == ("stop_loss", 98.0, series[k + 7].ts)
    sell = Trade.get(Trade.side == "sell")
    assert sell.reason == "stop_loss" and sell.pnl < 0
    assert json.loads(Notification.get(Notification.kind == "trade_closed").payload)["reason"] == "stop_loss"
