"""The pure trading step and fill booking of a futures pair (USDT-M linear perpetual, one-way mode).

Called by engine/core.py when `settings.market == "futures"`; live, paper and the backtester share it.
Actions: buy opens a long (closes a short first), short opens a short (closes a long first), sell closes a
long, close closes whatever is open, hold does nothing. One order per step: a reversal closes now and opens
on a later signal. Every exit is reduce-only.

Book (accounting.PairBook with futures=True): holdings = position size in base (>= 0), side long|short,
margin = quote locked by the position (entry x size / leverage), cash = free quote.
Equity = cash + margin + unrealized PnL. Funding at each funding time (00/08/16 UTC) the position is held
over: paid (+) from cash at notional x rate when long and the rate is positive (received when negative;
mirrored for shorts), and booked into realized PnL and `funding_paid`.
"""

from __future__ import annotations

from decimal import Decimal

from .. import risk
from .. import risk_futures as rf
from .accounting import DAY_MS, PairBook, mark_to_market

ZERO = Decimal(0)
# a funding time the venue has reported nothing for by the next one had no payment (a rate of 0): passed over
FUNDING_GIVE_UP_MS = rf.FUNDING_MS
FUNDING_ASK_MS = 5 * 60_000  # while a payment is awaited, the venue is asked at most this often per pair
BUY, SELL, HOLD, SHORT, CLOSE = "buy", "sell", "hold", "short", "close"


def _closes(book: PairBook, action: str) -> bool:
    if action == CLOSE:
        return True
    if book.side == "short":
        return action == BUY
    return action in (SELL, SHORT)


def step(core, book: PairBook, candles, decision, settings, now_ms: int, last_price: float | None):
    """core.step for a futures pair (core is engine.core, passed in to keep the import one way)."""
    action = core._action(decision)
    day = now_ms // DAY_MS
    if not book.in_position and action not in (BUY, SHORT) and not book.breaker_until_ms and day == book.day:
        return core.NOTHING

    px, rolled, expired = core.open_step(book, candles, now_ms, last_price)

    if book.in_position:
        funding = None
        if px is not None and settings.funding_rate is not None:
            funding = settle_funding(book, px, settings.funding_rate, now_ms)
        exit_side = SELL if book.side == "long" else BUY
        hit = exit_hit(book, candles, last_price, settings)
        if hit is not None:
            amount = book.holdings if hit[0] == rf.LIQUIDATION else core.sellable(book, settings)
            if amount > ZERO:
                if px is not None:
                    mark_to_market(book, px)
                order = core.OrderRequest(exit_side, None, amount, hit[0], hit[1], True)
                return core.StepResult((order,), hit, None, expired, rolled, None, funding)
        trail(book, candles, last_price, settings)
        trip = None
        if px is not None:
            mark_to_market(book, px)
            if not book.breaker_until_ms:
                trip = core._evaluate(book, settings)
                if trip is not None:
                    core.trip_breaker(book, trip, settings, now_ms)
        if _closes(book, action):
            amount = core.sellable(book, settings)
            if amount > ZERO:
                order = core.OrderRequest(exit_side, None, amount, "signal", None, True)
                return core.StepResult((order,), None, trip, expired, rolled, None, funding)
            return core.StepResult((), None, trip, expired, rolled, "below_minimum", funding)
        if trip or expired or rolled is not None or funding is not None:
            return core.StepResult((), None, trip, expired, rolled, None, funding)
        return core.NOTHING

    if action not in (BUY, SHORT):
        if expired or rolled is not None:
            return core.StepResult((), None, None, expired, rolled, None)
        return core.NOTHING
    side = "long" if action == BUY else "short"
    if settings.direction not in ("both", side):
        return core.StepResult((), None, None, expired, rolled, "direction")
    if book.breaker_until_ms:
        return core.StepResult((), None, None, expired, rolled, "breaker")
    if getattr(decision, "confidence", 100) < settings.min_confidence:
        return core.StepResult((), None, None, expired, rolled, "low_confidence")
    if px is None or px <= ZERO:
        return core.StepResult((), None, None, expired, rolled, "no_cash")
    equity = mark_to_market(book, px)
    lev = Decimal(settings.leverage)
    # margin + the taker fee on the notional must fit in the free cash
    margin = risk.position_size(equity, book.cash, settings.max_position_percent, settings.fee_rate * lev)
    if margin <= ZERO:
        return core.StepResult((), None, None, expired, rolled, "no_cash")
    amount = risk.floor_to_step(margin * lev / px, settings.amount_step)
    if risk.check_minimums(amount, amount * px, settings.min_amount, settings.min_cost) is not None:
        return core.StepResult((), None, None, expired, rolled, "below_minimum")
    order = core.OrderRequest(BUY if side == "long" else SELL, None, amount, "signal", None, False)
    return core.StepResult((order,), None, None, expired, rolled, None)


def exit_hit(book: PairBook, candles, last_price: float | None, settings) -> tuple | None:
    """First of stop-loss, take-profit or liquidation that the candles (oldest first), then the last
    price, reach: (reason, trigger price, candle ts or None). Inside one candle the stop wins over the
    target; a candle that OPENS beyond the liquidation price (a gap through the stop) liquidates, settled at
    the bankruptcy price (the whole margin is lost). Prices are negated for a short: one code path."""
    k = -1.0 if book.side == "short" else 1.0
    liq = k * float(rf.liquidation_price(book.entry_price, book.leverage, book.side, settings.maint_margin_rate))
    bust = float(rf.bankruptcy_price(book.entry_price, book.leverage, book.side))
    sl = k * book.sl_f if book.sl_f is not None else None
    tp = k * book.tp_f if book.tp_f is not None else None
    for c in candles:
        o = k * c.open
        worst, best = (k * c.low, k * c.high) if k > 0 else (k * c.high, k * c.low)
        if o <= liq:
            return rf.LIQUIDATION, bust, c.ts
        if sl is not None and worst <= sl:
            return risk.STOP_LOSS, k * (o if o < sl else sl), c.ts
        if worst <= liq:
            return rf.LIQUIDATION, bust, c.ts
        if tp is not None and best >= tp:
            return risk.TAKE_PROFIT, k * (o if o > tp else tp), c.ts
    if last_price is not None:
        p = k * last_price
        if p <= liq:
            return rf.LIQUIDATION, bust, None
        if sl is not None and p <= sl:
            return risk.STOP_LOSS, last_price, None
        if tp is not None and p >= tp:
            return risk.TAKE_PROFIT, last_price, None
    return None


def trail(book: PairBook, candles, last_price: float | None, settings) -> bool:
    """Move the stop to trailing_stop_percent from the best price since entry (never loosen it)."""
    pct = settings.trailing_stop_percent
    if not pct or pct <= ZERO or not book.in_position:
        return False
    short = book.side == "short"
    prices = [c.low if short else c.high for c in candles]
    if last_price is not None:
        prices.append(last_price)
    if not prices:
        return False
    best = min(prices) if short else max(prices)
    new = rf.trailed_stop(book.stop_loss, best, pct, book.side)
    if new is None:
        return False
    book.stop_loss = new
    book.sl_f = float(new)
    return True


def settle_funding(book: PairBook, mark: Decimal, rate, now_ms: int) -> Decimal | None:
    """Book the funding of every funding time since the last one booked; returns what was paid (+) or
    received (-), or None when no funding time passed. `rate`: one rate for every funding time, or a
    mapping {funding time ms: rate} (a backtest's --funding file; a time it lacks pays nothing)."""
    ft = rf.funding_time(now_ms)
    if ft <= book.last_funding_ms:
        return None
    times = (ft - book.last_funding_ms) // rf.FUNDING_MS if book.last_funding_ms else 1
    if isinstance(rate, dict):
        rate = sum((rate.get(ft - k * rf.FUNDING_MS, ZERO) for k in range(times)), ZERO)
        times = 1
    pay = rf.funding_payment(book.side, book.holdings, mark, Decimal(rate)) * times
    book.last_funding_ms = ft
    _book_funding(book, pay, mark)
    return pay


def funding_times_held(cursor: int, now_ms: int, spans) -> list[int]:
    """The funding times after `cursor` up to now at which the pair held a position. `spans`: (opened ms,
    closed ms or None) of its positions; a position is held at T when opened before T and closed at or after."""
    last = rf.funding_time(now_ms)
    after = rf.funding_time(cursor) + rf.FUNDING_MS if cursor else 0
    out: set[int] = set()
    for opened, closed in spans:
        t = max(rf.funding_time(opened) + rf.FUNDING_MS, after)
        end = last if closed is None else min(last, closed)
        while t <= end:
            out.add(t)
            t += rf.FUNDING_MS
    return sorted(out)


def _hour(ms: int) -> int:
    """A payment's funding time: the venues stamp it at (or a little after) a whole hour."""
    return (ms + 1_800_000) // 3_600_000 * 3_600_000


def held_at(spans, ms: int) -> int | None:
    """Index of the span holding a position at the funding time of a payment stamped `ms`, or None."""
    t = _hour(ms)
    for i, (opened, closed) in enumerate(spans):
        if opened < t and (closed is None or t <= closed):
            return i
    return None


def settle_venue_funding(book: PairBook, payments, covered_until: int, spans, now_ms: int,
                         mark: Decimal | None) -> list[tuple[int, Decimal]]:
    """Live: book what the venue settled (FundingPayment rows of exchange.live_futures, oldest first, read up
    to `covered_until`) for the funding times after the pair's cursor (`last_funding_ms`, persisted) at which
    it held a position (`spans`, as funding_times_held), also a position closed since. Returns [(span index,
    paid + / received -)], each booked once: the cursor moves past every payment booked, and past a funding
    time the venue reported nothing for once it reported a later payment or FUNDING_GIVE_UP_MS went by (a
    rate of 0; nothing comes). Only the open position's (the last span while in position) share moves its
    position fields; an earlier position's is booked into the pair's cash, PnL and funding only."""
    cursor = book.last_funding_ms
    due = funding_times_held(cursor, now_ms, spans)
    out: dict[int, Decimal] = {}
    seen = cursor
    for f in payments:
        if f.time_ms <= cursor or f.time_ms > now_ms:
            continue
        seen = max(seen, f.time_ms)
        i = held_at(spans, f.time_ms)
        if i is not None:
            out[i] = out.get(i, ZERO) + f.paid
    stamped = [_hour(f.time_ms) for f in payments if cursor < f.time_ms <= now_ms]
    waiting = [t for t in due if t not in stamped and not any(s > t for s in stamped)
               and not (now_ms - t >= FUNDING_GIVE_UP_MS and covered_until >= t)]
    if waiting:
        book.last_funding_ms = min(max(seen, cursor), waiting[0] - 1) if seen > cursor else cursor
    else:
        book.last_funding_ms = max(seen, rf.funding_time(now_ms), cursor)
    open_span = len(spans) - 1 if book.in_position and spans and spans[-1][1] is None else None
    for i, pay in sorted(out.items()):
        if i == open_span:
            _book_funding(book, pay, mark)
        else:  # a position closed since: the pair's money, not the open position's
            book.cash -= pay
            book.realized_pnl -= pay
            book.funding_paid += pay
            if mark is not None:
                mark_to_market(book, mark)
    return sorted(out.items())


def _book_funding(book: PairBook, pay: Decimal, mark: Decimal | None) -> None:
    book.cash -= pay
    book.realized_pnl -= pay
    book.position_pnl -= pay
    book.funding_paid += pay
    book.position_funding += pay
    if mark is not None:
        mark_to_market(book, mark)


def book_fill(core, book: PairBook, fill, settings, now_ms: int, decision=None):
    """Book an opening or a closing (reduce-only) fill. Returns core.FillOutcome; pnl None when opening."""
    fill_side = "long" if fill.side == BUY else "short"
    if not book.in_position or fill_side == book.side:
        _open(book, fill, settings, now_ms, decision)
        return core.FillOutcome(fill.side, None, False, None)
    held = book.holdings
    sold = fill.amount if fill.amount < held else held
    if held > ZERO:
        m_rel = book.margin if sold == held else book.margin * sold / held
        released = book.cost_basis if sold == held else book.cost_basis * sold / held
    else:
        m_rel = released = ZERO
    gross = rf.sign(book.side) * (fill.price - book.entry_price) * sold
    fee = fill.fee_quote
    pnl = gross - fee - (released - m_rel)
    book.holdings = held - sold
    book.margin -= m_rel
    book.cost_basis -= released
    book.cash += m_rel + gross - fee
    book.realized_pnl += pnl
    book.position_pnl += pnl
    book.fees_paid += fee
    book.fees_today += fee
    book.trades_today += 1
    closed = book.holdings <= ZERO or book.holdings < settings.dust
    if closed:
        book.cash += book.margin  # a remainder below the minimum cannot be traded: released
        book.holdings = book.margin = book.cost_basis = ZERO
        book.in_position = False
        book.entry_price = book.stop_loss = book.take_profit = None
        book.sl_f = book.tp_f = None
        if book.position_pnl < ZERO:
            book.consecutive_losses += 1
            book.losses_today += 1
        else:
            book.consecutive_losses = 0
            book.wins_today += 1
    mark_to_market(book, fill.price)
    trip = None
    if not book.breaker_until_ms:
        trip = core._evaluate(book, settings)
        if trip is not None:
            core.trip_breaker(book, trip, settings, now_ms)
    return core.FillOutcome(fill.side, pnl, closed, trip)


def _open(book: PairBook, fill, settings, now_ms: int, decision) -> None:
    got = fill.amount
    if got <= ZERO:
        return
    if not book.in_position:
        book.side = "long" if fill.side == BUY else "short"
        book.leverage = settings.leverage
        book.position_pnl = ZERO
        book.position_funding = ZERO
        book.last_funding_ms = rf.funding_time(now_ms)  # the next funding time is the first one paid
        book.entry_price = fill.price
    else:
        held = book.holdings
        book.entry_price = (book.entry_price * held + fill.price * got) / (held + got)
    m = fill.cost / Decimal(book.leverage)
    fee = fill.fee_quote
    book.holdings += got
    book.margin += m
    book.cash -= m + fee
    book.cost_basis += m + fee
    book.fees_paid += fee
    book.fees_today += fee
    book.trades_today += 1
    book.in_position = True
    entry, side = book.entry_price, book.side
    sl = getattr(decision, "stop_loss", None)
    tp = getattr(decision, "take_profit", None)
    sl = Decimal(sl) if sl is not None else None
    tp = Decimal(tp) if tp is not None else None
    safe = rf.stop_price(entry, rf.max_safe_stop_loss(book.leverage, settings.maint_margin_rate), side)
    # a decider's levels are used only when on the right side of entry and (stop) inside the safe distance
    if sl is None or (side == "long" and not safe <= sl < entry) or (side == "short" and not entry < sl <= safe):
        sl = rf.stop_price(entry, settings.stop_loss_percent, side)
    if tp is None or (side == "long" and tp <= entry) or (side == "short" and not ZERO < tp < entry):
        tp = rf.target_price(entry, settings.take_profit_percent, side)
    book.stop_loss, book.take_profit = sl, tp
    book.sl_f = float(sl) if sl is not None else None
    book.tp_f = float(tp) if tp is not None else None
    mark_to_market(book, fill.price)
