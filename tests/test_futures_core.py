"""Futures in the pure core: long and short round trips by margin with fees and funding computed by hand,
reduce-only exits, the stop-loss before liquidation at 10x, a gap through both (liquidation), trailing stops,
direction limits and the spot meaning of short/close."""

from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from tradebot import risk_futures as rf
from tradebot.engine import accounting as acc
from tradebot.engine import core
from tradebot.exchange.base import MarketRules
from tradebot.exchange.paper import simulate_futures_fill
from tradebot.strategy.base import Candle, Decision

DAY = acc.DAY_MS
H8 = rf.FUNDING_MS
T0 = 20000 * DAY + 3_600_000  # 01:00 UTC
RULES = MarketRules("BTC/USDT:USDT", "BTC", "USDT", D("0.001"), D("0.01"), D("0.001"), D("5"), D("0.0005"))
FUT = core.PairSettings(
    max_position_percent=D(30), stop_loss_percent=D(2), take_profit_percent=D(50), amount_step=D("0.001"),
    min_amount=D("0.001"), min_cost=D(5), fee_rate=D("0.0005"), market="futures", leverage=3,
    funding_rate=D("0.0001"),
)


def futures_book(budget="1000"):
    b = acc.new_book(D(budget), day=T0 // DAY)
    b.futures = True
    return b


def run_fill(book, req, price, settings=FUT, now=T0, liquidation=False):
    f = simulate_futures_fill(RULES, req.side, D(price), "c1", req.base_amount, D("0.0005"),
                              charge_fee=not liquidation)
    return f, core.book_fill(book, f, settings, now)


def c(ts, o, h, lo, cl):
    return Candle(ts, o, h, lo, cl, 1.0)


def test_long_round_trip_by_margin_with_fees_and_funding_matches_hand_computation():
    book = futures_book()
    res = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "buy", FUT, T0, 100.0)
    (req,) = res.orders
    # margin = 30 % of equity 1000 = 300; notional 300 x 3 = 900 -> 9 BTC at 100; opening: not reduce-only
    assert (req.side, req.base_amount, req.reduce_only) == ("buy", D("9.000"), False)
    f, out = run_fill(book, req, "100")
    assert f.fee == D("0.45") and out.pnl is None
    assert (book.side, book.margin, book.cash) == ("long", D(300), D("699.55"))
    assert book.equity == D("999.55")
    assert book.stop_loss == D(98) and book.take_profit == D(150)
    # the 08:00 funding time passes with the mark at 110: a long pays 9 x 110 x 0.0001 = 0.099
    t1 = T0 + 7 * 3_600_000 + 60_000
    res = core.step(book, [c(t1 - 60_000, 110, 110, 110, 110)], "hold", FUT, t1, 110.0)
    assert res.funding == D("0.099")
    assert book.cash == D("699.451") and book.funding_paid == D("0.099")
    assert book.equity == D("699.451") + 300 + 90
    # a sell signal closes the long, reduce-only; no second funding in the same 8 h
    res = core.step(book, [c(t1, 110, 110, 110, 110)], "sell", FUT, t1 + 60_000, 110.0)
    (req,) = res.orders
    assert (req.side, req.base_amount, req.reduce_only, req.reason) == ("sell", D("9.000"), True, "signal")
    assert res.funding is None
    f, out = run_fill(book, req, "110", now=t1 + 60_000)
    # gross 9 x 10 = 90; fees 0.45 + 0.495; pnl of the fill 90 - 0.495 - 0.45 = 89.055
    assert out.pnl == D("89.055") and out.closed
    assert book.cash == book.equity == D("1088.956")
    assert book.realized_pnl == D("88.956")  # the fill's pnl minus the funding paid
    assert book.margin == 0 and not book.in_position


def test_short_round_trip_profits_from_a_falling_market_and_receives_positive_funding():
    book = futures_book()
    (req,) = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "short", FUT, T0, 100.0).orders
    assert (req.side, req.base_amount, req.reduce_only) == ("sell", D("9.000"), False)
    run_fill(book, req, "100")
    assert book.side == "short" and book.stop_loss == D(102) and book.take_profit == D(50)
    t1 = T0 + 8 * 3_600_000
    res = core.step(book, [c(t1 - 60_000, 90, 90, 90, 90)], "hold", FUT, t1, 90.0)
    assert res.funding == D("-0.081")  # a short receives 9 x 90 x 0.0001
    assert book.unrealized_pnl == D(90)
    # a buy signal while short closes the short (reversal: the long would open on a later signal)
    (req,) = core.step(book, [c(t1, 90, 90, 90, 90)], "buy", FUT, t1 + 60_000, 90.0).orders
    assert (req.side, req.reduce_only) == ("buy", True)
    f, out = run_fill(book, req, "90")
    assert out.pnl == D(90) - D("0.405") - D("0.45")
    assert book.equity == D(1000) - D("0.45") + D("0.081") + D(90) - D("0.405")


def test_price_shock_hits_the_stop_of_a_10x_position_before_liquidation():
    s10 = _with(FUT, leverage=10)
    book = futures_book()
    (req,) = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "buy", s10, T0, 100.0).orders
    run_fill(book, req, "100", s10)
    liq = rf.liquidation_price(D(100), 10, "long")
    assert liq == D("90.5") and book.stop_loss == D(98) > liq
    # a candle falling from 99 to 85 touches the stop (98) first: exit at 98, not liquidated
    res = core.step(book, [c(T0, 99, 99, 85, 86)], "hold", s10, T0 + 60_000, 86.0)
    assert res.exit[0] == "stop_loss" and res.exit[1] == 98
    (req,) = res.orders
    assert req.reduce_only and req.reason == "stop_loss"


def test_gap_through_the_liquidation_price_loses_the_whole_margin():
    s10 = _with(FUT, leverage=10)
    book = futures_book()
    (req,) = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "buy", s10, T0, 100.0).orders
    run_fill(book, req, "100", s10)
    margin = book.margin
    res = core.step(book, [c(T0, 89, 89, 85, 86)], "hold", s10, T0 + 60_000, 86.0)
    assert res.exit[0] == "liquidation" and res.exit[1] == 90.0  # the bankruptcy price
    (req,) = res.orders
    f, out = run_fill(book, req, "90", s10, liquidation=True)
    assert f.fee == 0 and out.closed
    assert margin == D(300)  # 30 % of equity; notional 3,000 at 10x
    assert out.pnl == -margin - D("1.5")  # the margin lost, plus the opening fee 3,000 x 0.0005


def test_stop_loss_safety_rule_refuses_a_stop_beyond_half_the_liquidation_distance():
    assert rf.max_safe_stop_loss(3) == D("16.42")
    assert rf.max_safe_stop_loss(10) == D("4.75")
    assert rf.stop_loss_problem(10, D("2")) is None
    msg = rf.stop_loss_problem(10, D("5"))
    assert "9.50%" in msg and "4.75%" in msg


def test_trailing_stop_follows_the_best_price_for_long_and_short():
    st = _with(FUT, trailing_stop_percent=D(5))
    book = futures_book()
    (req,) = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "buy", st, T0, 100.0).orders
    run_fill(book, req, "100", st)
    core.step(book, [c(T0, 100, 120, 100, 119)], "hold", st, T0 + 60_000, 119.0)
    assert book.stop_loss == D(114)  # 120 x 0.95
    core.step(book, [c(T0 + 60_000, 119, 119, 115, 116)], "hold", st, T0 + 120_000, 116.0)
    assert book.stop_loss == D(114)  # never loosened
    res = core.step(book, [c(T0 + 120_000, 116, 116, 113, 113)], "hold", st, T0 + 180_000, 113.0)
    assert res.exit[0] == "stop_loss" and res.exit[1] == 114.0
    short = futures_book()
    (req,) = core.step(short, [c(T0 - 60_000, 100, 100, 100, 100)], "short", st, T0, 100.0).orders
    run_fill(short, req, "100", st)
    core.step(short, [c(T0, 100, 100, 80, 81)], "hold", st, T0 + 60_000, 81.0)
    assert short.stop_loss == D(84)


def test_trailing_stop_on_spot():
    st = core.PairSettings(stop_loss_percent=D(2), take_profit_percent=D(50), trailing_stop_percent=D(10))
    book = acc.new_book(D(1000), day=T0 // DAY)
    (req,) = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "buy", st, T0, 100.0).orders
    assert req.side == "buy"
    core.book_fill(book, SimpleNamespace(side="buy", price=D(100), net_base=D(3), net_quote=D(300),
                                         fee_quote=D(0)), st, T0)
    assert book.stop_loss == D(98)
    core.step(book, [c(T0, 100, 140, 100, 139)], "hold", st, T0 + 60_000, 139.0)
    assert book.stop_loss == D(126)  # 10 % below the high 140


def test_direction_long_only_skips_shorts_and_spot_reads_short_as_hold_and_close_as_sell():
    book = futures_book()
    res = core.step(book, [c(T0 - 60_000, 100, 100, 100, 100)], "short", _with(FUT, direction="long"), T0, 100.0)
    assert res.orders == () and res.skipped == "direction"
    spot = core.PairSettings()
    sb = acc.new_book(D(1000), day=T0 // DAY)
    assert core.step(sb, [c(T0 - 60_000, 100, 100, 100, 100)], "short", spot, T0, 100.0) is core.NOTHING
    sb.holdings, sb.in_position, sb.cost_basis, sb.entry_price = D(1), True, D(100), D(100)
    (req,) = core.step(sb, [c(T0, 100, 100, 100, 100)], Decision("close", 90, "", "t"), spot, T0 + 60_000,
                       100.0).orders
    assert req.side == "sell"


@pytest.mark.parametrize("text,expected", [
    ("BTC/USDT:USDT", ("BTC/USDT", True)), ("btcusdt.p", ("btcusdt", True)), ("BTCUSDT", ("BTCUSDT", False)),
    ("BTCUSDT-PERP", ("BTCUSDT", True)), ("ETH/USDT", ("ETH/USDT", False)),
])
def test_futures_symbol_spellings(text, expected):
    from tradebot.exchange.futures_symbols import split_futures_text

    assert split_futures_text(text) == expected


def _with(settings, **kw):
    import dataclasses

    return dataclasses.replace(settings, **kw)


def test_venue_funding_books_each_funding_time_held_once_and_gives_up_on_a_silent_one():
    from tradebot.engine.futures import FUNDING_GIVE_UP_MS, funding_times_held, settle_venue_funding
    from tradebot.exchange.live_futures import FundingPayment

    b = futures_book()
    b.holdings, b.side, b.entry_price, b.in_position = D("0.3"), "long", D(100), True
    ft = (T0 // H8 + 1) * H8
    spans = [(ft - H8 - 5, None)]  # opened just before the previous funding time, still open
    b.last_funding_ms = ft - H8
    assert funding_times_held(b.last_funding_ms, ft + 60_000, spans) == [ft]
    paid = [FundingPayment(ft - H8, D("9"), "old"), FundingPayment(ft + 3, D("0.25"), "a")]
    assert settle_venue_funding(b, paid, ft + 60_000, spans, ft + 60_000, D(100)) == [(0, D("0.25"))]
    assert (b.funding_paid, b.position_funding, b.realized_pnl, b.last_funding_ms) == \
        (D("0.25"), D("0.25"), D("-0.25"), ft + 3)  # the older one was booked before
    assert settle_venue_funding(b, paid, ft + 120_000, spans, ft + 120_000, D(100)) == []  # nothing new
    assert b.funding_paid == D("0.25")
    # the next funding time: not reported yet -> awaited (the cursor stays), passed over after the give-up time
    nxt = ft + H8
    assert settle_venue_funding(b, paid, nxt + 60_000, spans, nxt + 60_000, D(100)) == []
    assert b.last_funding_ms == ft + 3
    assert settle_venue_funding(b, paid, nxt + H8 - 1, spans, nxt + H8 - 1, D(100)) == []  # 8 h late: still
    assert b.last_funding_ms == ft + 3
    late = nxt + FUNDING_GIVE_UP_MS + 60_000
    assert settle_venue_funding(b, paid, late, [(ft - H8 - 5, nxt + H8 - 10)], late, D(100)) == []
    assert b.last_funding_ms == rf.funding_time(late)
    # a position closed since: its payment counts for the pair, not for the position now open
    b2 = futures_book()
    b2.holdings, b2.side, b2.entry_price, b2.in_position = D("0.1"), "short", D(100), True
    b2.last_funding_ms = ft - H8
    spans2 = [(ft - H8 + 5, ft + 1_000), (ft + 60_000, None)]
    got = [FundingPayment(ft + 2_000, D("-0.4"), "b")]  # a short received, stamped after its close
    assert settle_venue_funding(b2, got, ft + 300_000, spans2, ft + 300_000, D(100)) == [(0, D("-0.4"))]
    assert (b2.funding_paid, b2.position_funding, b2.realized_pnl) == (D("-0.4"), 0, D("0.4"))
    assert b2.last_funding_ms == ft + 2_000
