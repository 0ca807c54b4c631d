"""Money safety of the cycle around orders that are not final yet (reviewed scenarios)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tests.fixtures_engine import MINUTE, ScriptedDecider, SimBroker, make_pair, make_user
from tradebot.exchange.base import Fill
from tradebot.models import Order, Position, Trade, UserState

D = Decimal


def last_closed_ts(clock):
    return clock.ms - clock.ms % MINUTE - MINUTE


def _working(fill: Fill, filled_fraction: Decimal) -> Fill:
    """`fill` as the exchange shows it while the order is still working (part of it filled)."""
    f = filled_fraction
    status = "open" if f == 0 else "partially_filled"
    return replace(
        fill,
        status=status,
        amount=fill.amount * f,
        cost=fill.cost * f,
        fee=fill.fee * f,
        net_base=fill.net_base * f,
        net_quote=fill.net_quote * f,
        fee_quote=fill.fee_quote * f,
    )


def _slow_exchange(monkeypatch, fraction: Decimal):
    """Market orders are accepted, then shown as working (`fraction` filled) until `finish` is called."""
    real = SimBroker._place
    working: dict[str, Fill] = {}
    final: dict[str, Fill] = {}

    def place(self, symbol, side, coid, quote=None, base=None):
        fill = real(self, symbol, side, coid, quote, base)
        final[coid] = fill
        working[coid] = _working(fill, fraction)
        return working[coid]

    def find(self, symbol, coid):
        return working.get(coid)

    def finish():
        working.update(final)

    monkeypatch.setattr(SimBroker, "_place", place)
    monkeypatch.setattr(SimBroker, "find_order", find)
    return final, finish


def test_an_order_still_working_blocks_new_orders_until_it_is_final(engine, clock, deciders, replay_hub, monkeypatch):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = last_closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t0 + i * MINUTE: "buy" for i in range(6)})
    final, finish = _slow_exchange(monkeypatch, D(0))
    engine.start_pair(cfg.id)
    for _ in range(4):
        engine.run_cycle(cfg.id)
        clock.advance(1)
    # one buy on the exchange, not one per buy signal while the first is still working
    assert len(final) == 1
    assert Order.select().count() == 1 and Order.get().status == "pending"
    assert Trade.select().count() == 0
    finish()
    engine.run_cycle(cfg.id)
    clock.advance(1)
    engine.run_cycle(cfg.id)
    assert len(final) == 1 and Trade.select().count() == 1
    st = UserState.get(UserState.config == cfg.id)
    fill = next(iter(final.values()))
    assert st.cash == D(1000) - fill.net_quote and st.holdings == fill.net_base


def test_a_partly_filled_working_order_is_booked_once_in_full_when_final(
    engine, clock, deciders, replay_hub, monkeypatch
):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = last_closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t0: "buy"})
    final, finish = _slow_exchange(monkeypatch, D("0.5"))
    engine.start_pair(cfg.id)
    engine.run_cycle(cfg.id)
    clock.advance(1)
    engine.run_cycle(cfg.id)  # reconcile sees it still working: nothing booked yet
    assert Trade.select().count() == 0 and Order.get().status == "pending"
    finish()
    clock.advance(1)
    engine.run_cycle(cfg.id)
    fill = next(iter(final.values()))
    trade = Trade.get()
    assert trade.amount == fill.net_base  # the whole fill, not the half seen first
    st = UserState.get(UserState.config == cfg.id)
    assert st.cash == D(1000) - fill.net_quote and st.holdings == fill.net_base
    assert Position.get().amount == fill.net_base
    assert Order.get().status == "filled"
