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
    st = UserState.get(UserState.config == cfg.id)
    assert "not settled" in st.last_error  # told, once, why the pair does not trade
    finish()
    engine.run_cycle(cfg.id)
    clock.advance(1)
    engine.run_cycle(cfg.id)
    assert len(final) == 1 and Trade.select().count() == 1
    st = UserState.get(UserState.config == cfg.id)
    fill = next(iter(final.values()))
    assert st.cash == D(1000) - fill.net_quote and st.holdings == fill.net_base
    assert st.last_error is None


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


def test_no_buy_whose_position_could_not_be_sold_at_its_stop_loss():
    from tradebot.engine import accounting as acc
    from tradebot.engine import core
    from tradebot.strategy.base import Candle

    t0 = 1_700_000_000_000
    day = t0 // acc.DAY_MS
    cs = [Candle(t0, 100.0, 100.0, 100.0, 100.0, 1.0)]
    s = core.PairSettings(min_cost=D(5), amount_step=D("0.00001"), min_amount=D("0.00001"))
    # 30% of 17 = 5.10 >= 5, but after the fee in base, at the 2% stop-loss it is worth 4.99 < 5
    r = core.step(acc.new_book(D(17), day=day), cs, "buy", s, t0 + 60_000)
    assert r.orders == () and r.skipped == "below_minimum"
    # 30% of 18 = 5.40: still 5.29 at the stop-loss
    r = core.step(acc.new_book(D(18), day=day), cs, "buy", s, t0 + 60_000)
    assert r.orders and r.orders[0].quote_amount == D("5.40")


def test_a_stop_loss_exit_is_never_below_the_exchange_minimum(engine, clock, deciders, replay_hub):
    import json

    from tests.fakes.exchange_data import REAL_START
    from tests.fixtures_engine import flat_series
    from tradebot.models import Notification
    from tradebot.strategy.base import Candle

    series = flat_series(REAL_START, 3000, 100.0)
    k = (clock.ms - REAL_START) // MINUTE
    for j in range(k + 2, 3000):  # falls through the 2% stop-loss after the buy
        series[j] = Candle(series[j].ts, 97.0, 97.0, 97.0, 97.0, 1.0)
    replay_hub.market_data.series["BTC/USDT"] = series
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "17", decider="scripted")  # 30% = 5.10 USDT, min notional 5
    deciders["scripted"] = ScriptedDecider({last_closed_ts(clock): "buy"})
    for _ in range(5):
        engine.run_cycle(cfg.id)  # before: the stop-loss sell raised BelowMinimum every cycle
        clock.advance(1)
    assert Order.select().where(Order.status == "failed").count() == 0
    assert Position.select().where(Position.status == "open").count() == 0
    errs = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "pair_error")]
    assert len(errs) == 1 and "stop-loss" in errs[0]["message"] and errs[0]["needs_action"] is True


def test_a_sell_booked_by_reconcile_closes_the_position_despite_dust(engine, clock, deciders, replay_hub):
    import pytest

    from tradebot.exchange.errors import ExchangeUnavailable

    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = last_closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t0: "buy", t0 + 2 * MINUTE: "sell", t0 + 4 * MINUTE: "buy"})
    for i in range(5):
        if i == 2:  # the sell fills on the exchange but the answer is lost: reconcile books it
            for b in replay_hub.brokers.values():
                b.fault = "fill_then_drop"
            with pytest.raises(ExchangeUnavailable):
                engine.run_cycle(cfg.id)
        else:
            engine.run_cycle(cfg.id)
        clock.advance(1)
    sides = [(o.side, o.status) for o in Order.select().order_by(Order.id)]
    assert sides == [("buy", "filled"), ("sell", "filled"), ("buy", "filled")]
    first, second = Position.select().order_by(Position.id)
    assert first.status == "closed" and second.status == "open"
    st = UserState.get(UserState.config == cfg.id)
    assert st.cash + st.holdings * st.last_price == st.equity


def test_a_paper_position_is_never_sold_on_a_live_account_after_reconnecting(engine, clock, deciders, replay_hub):
    import pytest

    from tests.fixtures_engine import StubVault
    from tradebot.engine.errors import NetworkChanged
    from tradebot.models import ExchangeCredential

    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = last_closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t0: "buy", t0 + 2 * MINUTE: "sell", t0 + 3 * MINUTE: "sell"})
    engine.run_cycle(cfg.id)  # paper buy
    clock.advance(1)
    v = StubVault()
    ExchangeCredential.update(network="live", api_key_enc=v.encrypt("k"), secret_enc=v.encrypt("s")).execute()
    for _ in range(2):
        with pytest.raises(NetworkChanged):
            engine.run_cycle(cfg.id)
        clock.advance(1)
    live = replay_hub.brokers.get(("binance", "live", "k"))
    assert live is None or not live.ledger  # nothing sold on the live account
    st = UserState.get(UserState.config == cfg.id)
    assert st.status == "error" and "paper" in st.last_error
    ExchangeCredential.update(network="paper", api_key_enc=None, secret_enc=None).execute()
    engine.run_cycle(cfg.id)  # back on paper: the paper position is closed there
    assert [(o.side, o.network, o.status) for o in Order.select().order_by(Order.id)] == [
        ("buy", "paper", "filled"),
        ("sell", "paper", "filled"),
    ]


def test_an_unsettled_live_order_is_not_marked_failed_by_a_lookup_on_another_network(
    engine, clock, deciders, replay_hub
):
    import pytest

    from tests.fixtures_engine import StubVault
    from tradebot.engine.errors import NetworkChanged
    from tradebot.exchange.errors import ExchangeUnavailable
    from tradebot.models import ExchangeCredential

    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", network="live", decider="scripted")
    deciders["scripted"] = ScriptedDecider({last_closed_ts(clock): "buy"})
    live = replay_hub.broker("binance", "live", f"key{user.id}")
    live.fault = "fill_then_drop"  # filled on the live account, the answer is lost
    with pytest.raises(ExchangeUnavailable):
        engine.run_cycle(cfg.id)
    ExchangeCredential.update(network="paper", api_key_enc=None, secret_enc=None).execute()
    clock.advance(1)
    assert engine.runner.reconcile_pending(now_ms=clock.ms)["pending"] == 1
    with pytest.raises(NetworkChanged):
        engine.run_cycle(cfg.id)
    assert Order.get().status == "pending"  # not 'failed': the live fill is still to be booked
    v = StubVault()
    ExchangeCredential.update(
        network="live", api_key_enc=v.encrypt(f"key{user.id}"), secret_enc=v.encrypt(f"secret{user.id}")
    ).execute()
    clock.advance(1)
    engine.run_cycle(cfg.id)
    assert Order.get().status == "filled" and Trade.get().amount == next(iter(live.ledger.values())).net_base


def test_a_position_closed_by_several_sells_counts_as_one_win_or_loss_by_its_total():
    from types import SimpleNamespace

    from tradebot.engine import accounting as acc
    from tradebot.engine import core

    def f(side, base, price):
        price = D(price)
        return SimpleNamespace(side=side, price=price, net_base=D(base), net_quote=D(base) * price, fee_quote=D(0))

    s = core.PairSettings()
    t = 1_700_000_000_000
    # a big loss on the first half, a small gain on the rest: a LOSING trade
    b = acc.new_book(D(1000), day=t // acc.DAY_MS)
    core.book_fill(b, f("buy", "1", "100"), s, t)
    core.book_fill(b, f("sell", "0.5", "80"), s, t)
    out = core.book_fill(b, f("sell", "0.5", "101"), s, t)
    assert out.closed and out.pnl > 0 and b.position_pnl == D("-9.5")
    assert b.consecutive_losses == 1 and b.losses_today == 1 and b.wins_today == 0
    # a big gain then a small loss: a WINNING trade, the streak is over
    core.book_fill(b, f("buy", "1", "100"), s, t)
    assert b.position_pnl == 0
    core.book_fill(b, f("sell", "0.5", "120"), s, t)
    out = core.book_fill(b, f("sell", "0.5", "99"), s, t)
    assert out.closed and out.pnl < 0 and b.position_pnl == D("9.5")
    assert b.consecutive_losses == 0 and b.wins_today == 1
