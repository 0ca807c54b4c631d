"""Pure trading core: accounting, step, book_fill."""

from decimal import Decimal as D
from types import SimpleNamespace

from tradebot.engine import accounting as acc
from tradebot.engine import core
from tradebot.strategy.base import Candle, Decision

DAY = acc.DAY_MS
T0 = 20000 * DAY  # a midnight


def fill(side, amount, price, fee_rate=D("0.001")):
    amount, price = D(amount), D(price)
    cost = amount * price
    if side == "buy":  # fee in base
        fee = amount * fee_rate
        return SimpleNamespace(
            side="buy",
            price=price,
            amount=amount,
            cost=cost,
            net_base=amount - fee,
            net_quote=cost,
            fee_quote=fee * price,
        )
    fee = cost * fee_rate
    return SimpleNamespace(
        side="sell",
        price=price,
        amount=amount,
        cost=cost,
        net_base=amount,
        net_quote=cost - fee,
        fee_quote=fee,
    )


def test_buy_fee_in_base_then_sell_all_rounds_down_and_pnl_includes_fees():
    s = core.PairSettings(amount_step=D("0.0001"))
    b = acc.new_book(D(1000), day=T0 // DAY)
    core.book_fill(b, fill("buy", "0.01", "20000"), s, T0)
    assert b.holdings == D("0.00999") and b.cash == D(800) and b.cost_basis == D(200)
    assert b.stop_loss == D(19600) and b.take_profit == D(21000)
    amt = core.sellable(b, s)
    assert amt == D("0.0099")
    out = core.book_fill(b, fill("sell", amt, "21000"), s, T0 + 1000)
    assert out.closed and not b.in_position
    assert out.pnl == D("0.0099") * 21000 * D("0.999") - D(200) * D("0.0099") / D("0.00999")
    # equity identity: cash + holdings*price == budget + realized + unrealized
    acc.mark_to_market(b, D(21000))
    assert b.equity == b.budget + b.realized_pnl + b.unrealized_pnl


def test_flat_hold_is_the_shared_nothing():
    b = acc.new_book(D(1000), day=T0 // DAY)
    s = core.PairSettings()
    cs = [Candle(T0, 1.0, 1.0, 1.0, 1.0, 1.0)]
    assert core.step(b, cs, "hold", s, T0 + 60_000) is core.NOTHING
    assert core.step(b, cs, None, s, T0 + 60_000) is core.NOTHING


def test_buy_sizes_30pct_of_equity_and_respects_min_confidence_and_minimum():
    b = acc.new_book(D(1000), day=T0 // DAY)
    s = core.PairSettings(min_cost=D(10))
    cs = [Candle(T0, 100.0, 100.0, 100.0, 100.0, 1.0)]
    r = core.step(b, cs, Decision("buy", 80, "", "t"), s, T0 + 60_000)
    assert r.orders == (core.OrderRequest("buy", D(300), None, "signal"),)
    r = core.step(b, cs, Decision("buy", 10, "", "t"), s, T0 + 60_000)
    assert r.orders == () and r.skipped == "low_confidence"
    small = acc.new_book(D(20), day=T0 // DAY)
    assert core.step(small, cs, "buy", s, T0 + 60_000).skipped == "below_minimum"


def test_stop_loss_take_profit_on_the_right_candle():
    s = core.PairSettings()
    b = acc.new_book(D(1000), day=T0 // DAY)
    core.book_fill(b, fill("buy", "3", "100", D(0)), s, T0)
    cs = [Candle(T0 + 60_000, 100, 101, 99, 100, 1), Candle(T0 + 120_000, 100, 105.5, 99, 104, 1)]
    r = core.step(b, cs, "hold", s, T0 + 180_000)
    assert r.exit == ("take_profit", 105.0, T0 + 120_000)
    assert r.orders[0].side == "sell" and r.orders[0].reason == "take_profit" and r.orders[0].base_amount == 3


def test_breaker_consecutive_losses_pause_and_resume_after_cooldown():
    s = core.PairSettings(max_position_percent=D(10))
    b = acc.new_book(D(1000), day=T0 // DAY)
    now = T0
    for _ in range(5):
        assert not b.breaker_until_ms
        core.book_fill(b, fill("buy", "1", "10", D(0)), s, now)
        out = core.book_fill(b, fill("sell", "1", "9.99", D(0)), s, now)
        now += 60_000
    assert out.trip is not None and out.trip.kind == "consecutive_losses"
    assert b.breaker_until_ms == now - 60_000 + 60 * 60_000
    cs = [Candle(now, 10, 10, 10, 10, 1)]
    assert core.step(b, cs, "buy", s, now).skipped == "breaker"
    r = core.step(b, cs, "buy", s, b.breaker_until_ms)
    assert r.breaker_expired and r.orders and r.orders[0].side == "buy"


def test_breaker_daily_loss_trips_while_holding_and_day_roll():
    s = core.PairSettings(stop_loss_percent=D(50), max_position_percent=D(100))
    b = acc.new_book(D(1000), day=T0 // DAY)
    core.book_fill(b, fill("buy", "10", "100", D(0)), s, T0)
    r = core.step(b, [Candle(T0 + 60_000, 100, 100, 94, 94.9, 1)], "hold", s, T0 + 120_000)
    assert r.trip is not None and r.trip.kind == "daily_loss" and not r.orders
    assert b.daily_pnl == D(-51)
    r = core.step(b, [Candle(T0 + DAY, 95, 95, 95, 95, 1)], "hold", s, T0 + DAY + 60_000)
    assert r.rolled_day == T0 // DAY and b.daily_pnl == 0


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]), st.decimals("1", "100000", places=2), st.integers(1, 100)
        ),
        min_size=1,
        max_size=30,
    ),
    st.decimals("10", "100000", places=2),
)
def test_accounting_invariants_hold_for_any_sequence_of_fills(ops, budget):
    """cash + holdings * price == budget + realized + unrealized; cash never negative; sells never exceed
    holdings; fees add up."""
    s = core.PairSettings(amount_step=D("0.00001"), max_position_percent=D(30))
    b = acc.new_book(budget, day=0)
    fees = D(0)
    for side, price, pct in ops:
        if side == "buy":
            size = core.risk.position_size(b.equity or b.cash, b.cash, D(pct))
            if size <= 0:
                continue
            amount = core.risk.floor_to_step(size / price, s.amount_step)
            if amount <= 0:
                continue
            f = fill("buy", amount, price)
        else:
            amount = core.sellable(b, s)
            if amount <= 0:
                continue
            f = fill("sell", amount, price)
            assert amount <= b.holdings
        core.book_fill(b, f, s, 1000)
        fees += f.fee_quote
        acc.mark_to_market(b, price)
        assert b.cash >= 0 and b.holdings >= 0
        # exact up to Decimal's 28 significant digits: a run of sells at 1e5 can compound a 10 USDT
        # budget to 1e15, where the 28th digit is the 13th decimal
        tolerance = max(D("1e-12"), abs(b.equity).scaleb(-24))
        assert abs(b.equity - (b.budget + b.realized_pnl + b.unrealized_pnl)) < tolerance
    assert b.fees_paid == fees
