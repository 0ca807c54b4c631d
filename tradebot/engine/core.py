"""The pure trading core: ONE code path for live, testnet, paper and the backtester.  No I/O here.

API (all pure; the book is mutated in place):

    settings = PairSettings.from_config(user_config, market_rules)     # or PairSettings(...) directly
    book = accounting.new_book(budget, day=now_ms // DAY_MS)

    res = step(book, candles_since_last, decision, settings, now_ms, last_price=None)
        candles_since_last: closed Candles (strategy.base.Candle) not seen by the previous step, oldest first
        decision: a strategy Decision, a plain action string ("buy" | "sell" | "hold"), or None
        now_ms: the clock in ms since the epoch (UTC); drives the daily roll and the breaker cooldown
        last_price: float; defaults to the close of the newest candle
      -> StepResult (or the shared constant NOTHING when there is nothing to do):
        res.orders:   tuple of OrderRequest(side, quote_amount, base_amount, reason, price_hint)
                      at most one order per step. Buys carry quote_amount (spend this much quote), sells
                      carry base_amount (already rounded DOWN to the step, never more than held).
                      price_hint: float trigger price for stop_loss / take_profit exits (the backtester may
                      fill there), else None (fill at market).
        res.exit:     (reason, trigger_price, candle_ts) when a stop-loss/take-profit was hit, else None
        res.trip:     risk.Trip when the circuit breaker tripped in this step (mark-to-market), else None
        res.breaker_expired: True when a pause ended in this step
        res.rolled_day: the previous UTC day number when the day rolled over (for daily reports), else None
        res.skipped:  why a wanted buy was not placed ("breaker" | "low_confidence" | "below_minimum" |
                      "no_cash"), else None

    out = book_fill(book, fill, settings, now_ms, decision=None)
        book a fill (exchange.base.Fill or any object with side, price, net_base, net_quote, fee_quote)
        -> FillOutcome(side, pnl, closed, trip): pnl is the realized PnL of a sell (fees included), closed
           True when the position is now flat, trip a risk.Trip if this fill tripped the breaker
           (consecutive losses, daily loss, drawdown). Sets stop-loss/take-profit on buys.

    reset_breaker(book)   -> clears a pause and moves the risk references to the current equity.
    trip_breaker(book, trip, settings, now_ms) -> until_ms

Futures pairs (settings.market == "futures") take engine/futures.py's step and booking: long and short,
sizing by margin, reduce-only exits, liquidation, funding. A trailing stop (trailing_stop_percent) moves the
stop-loss after the exit check of each step, for spot and futures.

Rules: long-only spot (a "short" decision is a hold, "close" a sell); a buy only when flat and not paused; max_position_percent of equity capped by free
cash; exits (stop-loss, take-profit, sell signals) are always allowed, also while paused; stop-loss beats
take-profit inside one candle (see risk.check_exit).  The flat path (hold, no position, same day, no
breaker) allocates nothing and touches no Decimal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from .. import risk
from . import futures
from .accounting import DAY_MS, PairBook, apply_buy, apply_sell, mark_to_market, roll_day

ZERO = Decimal(0)
BUY, SELL, HOLD = "buy", "sell", "hold"
_SPOT_PLAIN = frozenset((BUY, SELL, HOLD))


class OrderRequest(NamedTuple):
    side: str  # buy | sell
    quote_amount: Decimal | None  # buys: quote to spend
    base_amount: Decimal | None  # sells: base to sell (rounded down to the step)
    reason: str  # signal | stop_loss | take_profit | liquidation (futures)
    price_hint: float | None = None
    reduce_only: bool = False  # futures exits: may only shrink the position


class StepResult(NamedTuple):
    orders: tuple = ()
    exit: tuple | None = None
    trip: risk.Trip | None = None
    breaker_expired: bool = False
    rolled_day: int | None = None
    skipped: str | None = None
    funding: Decimal | None = None  # futures: funding paid (+) / received (-) in this step


NOTHING = StepResult()


class FillOutcome(NamedTuple):
    side: str
    pnl: Decimal | None
    closed: bool
    trip: risk.Trip | None


@dataclass(frozen=True, slots=True)
class PairSettings:
    max_position_percent: Decimal = Decimal(30)
    stop_loss_percent: Decimal = Decimal(2)
    take_profit_percent: Decimal = Decimal(5)
    min_confidence: int = 60
    limits: risk.BreakerLimits = risk.BreakerLimits()
    amount_step: Decimal | None = None
    min_amount: Decimal | None = None
    min_cost: Decimal | None = None
    fee_rate: Decimal = Decimal("0.001")
    fee_in_quote: bool = False  # True when a buy's fee is charged on top in quote currency
    trailing_stop_percent: Decimal = ZERO  # 0 = off; the stop follows the best price since entry
    # futures (engine/futures.py); spot ignores them
    market: str = "spot"  # spot | futures
    leverage: int = 1
    direction: str = "both"  # both | long | short: which positions a futures pair may open
    maint_margin_rate: Decimal = Decimal("0.005")
    # the rate booked at each funding time, or {funding time ms: rate} (backtest --funding); None: no funding
    funding_rate: Decimal | dict | None = None

    @classmethod
    def from_config(cls, cfg, rules=None) -> PairSettings:
        """From a models.UserConfig (or anything with the same attributes) and exchange MarketRules."""
        return cls(
            max_position_percent=Decimal(cfg.max_position_percent),
            stop_loss_percent=Decimal(cfg.stop_loss_percent),
            take_profit_percent=Decimal(cfg.take_profit_percent),
            min_confidence=int(cfg.min_confidence),
            limits=risk.BreakerLimits(
                max_consecutive_losses=int(cfg.max_consecutive_losses),
                daily_loss_limit_percent=Decimal(cfg.daily_loss_limit_percent),
                max_drawdown_percent=Decimal(cfg.max_drawdown_percent),
                cooldown_minutes=int(cfg.cooldown_minutes),
            ),
            amount_step=getattr(rules, "amount_step", None),
            min_amount=getattr(rules, "min_amount", None),
            min_cost=getattr(rules, "min_cost", None),
            fee_rate=getattr(rules, "taker_fee", None) or Decimal("0.001"),
            trailing_stop_percent=Decimal(getattr(cfg, "trailing_stop_percent", None) or 0),
            market=getattr(cfg, "market_type", None) or "spot",
            leverage=int(getattr(cfg, "leverage", None) or 1),
            direction=getattr(cfg, "direction", None) or "both",
        )

    @property
    def dust(self) -> Decimal:
        """Smallest amount we could sell; below it holdings are dust and the position counts as closed."""
        a = self.amount_step or ZERO
        b = self.min_amount or ZERO
        return a if a > b else b


def _action(decision) -> str:
    if decision is None:
        return HOLD
    if type(decision) is str:
        return decision
    return decision.action


def _spot_action(action: str) -> str:
    """Spot has no shorts: short = hold, close = sell."""
    if action == "close":
        return SELL
    if action == "short":
        return HOLD
    return action


def open_step(book: PairBook, candles, now_ms: int, last_price: float | None):
    """What every step starts with, spot and futures: the price (last_price, else the newest close, else the
    book's), the day roll (marked to market first) and the breaker's expiry. -> (px, rolled day, expired)."""
    if last_price is None:
        last_price = candles[-1].close if candles else None
    px = Decimal(repr(last_price)) if last_price is not None else book.last_price
    rolled = None
    day = now_ms // DAY_MS
    if book.day != day:
        if px is not None:
            mark_to_market(book, px)
        rolled = book.day
        roll_day(book, day)
    expired = False
    if book.breaker_until_ms and now_ms >= book.breaker_until_ms:
        _clear_breaker(book)
        expired = True
    return px, rolled, expired


def step(
    book: PairBook,
    candles: Sequence,
    decision,
    settings: PairSettings,
    now_ms: int,
    last_price: float | None = None,
) -> StepResult:
    """One trading step for one pair; see the module docstring."""
    if settings.market == "futures":
        return futures.step(sys.modules[__name__], book, candles, decision, settings, now_ms, last_price)
    action = _action(decision)
    if action not in _SPOT_PLAIN:
        action = _spot_action(action)
    day = now_ms // DAY_MS
    # ---- fast path: flat, nothing wanted, nothing to expire, same day
    if not book.in_position and action != BUY and not book.breaker_until_ms and day == book.day:
        return NOTHING

    px, rolled, expired = open_step(book, candles, now_ms, last_price)

    # ---- exits first
    if book.in_position:
        hit = risk.check_exit(book.sl_f, book.tp_f, candles, last_price)
        if hit is not None:
            amount = sellable(book, settings)
            if amount > ZERO:
                if px is not None:
                    mark_to_market(book, px)
                order = OrderRequest(SELL, None, amount, hit[0], hit[1])
                return StepResult((order,), hit, None, expired, rolled, None)
        if settings.trailing_stop_percent:
            futures.trail(book, candles, last_price, settings)
        trip = None
        if px is not None:
            mark_to_market(book, px)
            if not book.breaker_until_ms:
                trip = _evaluate(book, settings)
                if trip is not None:
                    trip_breaker(book, trip, settings, now_ms)
        if action == SELL:
            amount = sellable(book, settings)
            if amount > ZERO:
                return StepResult(
                    (OrderRequest(SELL, None, amount, "signal"),), None, trip, expired, rolled, None
                )
            return StepResult((), None, trip, expired, rolled, "below_minimum")
        return (
            StepResult((), None, trip, expired, rolled, None)
            if (trip or expired or rolled is not None)
            else NOTHING
        )

    if action != BUY:
        return (
            StepResult((), None, None, expired, rolled, None) if (expired or rolled is not None) else NOTHING
        )

    # ---- a buy is wanted and we are flat
    if book.breaker_until_ms:
        return StepResult((), None, None, expired, rolled, "breaker")
    conf = getattr(decision, "confidence", 100)
    if conf < settings.min_confidence:
        return StepResult((), None, None, expired, rolled, "low_confidence")
    if px is not None:
        equity = mark_to_market(book, px)
    else:
        equity = book.equity
    fee = settings.fee_rate if settings.fee_in_quote else ZERO
    size = risk.position_size(equity, book.cash, settings.max_position_percent, fee)
    if size <= ZERO:
        return StepResult((), None, None, expired, rolled, "no_cash")
    amount = size / px if px else None
    if risk.check_minimums(amount, size, settings.min_amount, settings.min_cost) is not None:
        return StepResult((), None, None, expired, rolled, "below_minimum")
    if px and exit_below_minimum(size, px, settings, decision):
        return StepResult((), None, None, expired, rolled, "below_minimum")
    return StepResult((OrderRequest(BUY, size, None, "signal"),), None, None, expired, rolled, None)


def exit_price(px: Decimal, settings: PairSettings, decision=None) -> Decimal:
    """Price the exit of a position opened at `px` must still be sellable at: its stop-loss (the decider's
    when it proposes a sane one, else the pair's stop-loss %), or `px` when there is no stop-loss."""
    sl = getattr(decision, "stop_loss", None)
    if sl is not None:
        sl = Decimal(sl)
        if ZERO < sl < px:
            return sl
        sl = None
    sl = risk.stop_loss_price(px, settings.stop_loss_percent)
    return sl if sl is not None and ZERO < sl < px else px


def exit_below_minimum(size: Decimal, px: Decimal, settings: PairSettings, decision=None) -> bool:
    """True when the position a buy of `size` quote at `px` would open could NOT be sold at its stop-loss:
    what is held after the buy fee (taken in base) and the step rounding, valued at the stop-loss price,
    is below the exchange minimum (amount or notional). Such a buy would leave a position without an exit."""
    if not settings.min_cost and not settings.min_amount:
        return False
    net = risk.floor_to_step(size / px, settings.amount_step)
    if not settings.fee_in_quote:
        net -= net * settings.fee_rate
    net = risk.floor_to_step(net, settings.amount_step)
    out = exit_price(px, settings, decision)
    return risk.check_minimums(net, net * out, settings.min_amount, settings.min_cost) is not None


def sellable(book: PairBook, settings: PairSettings) -> Decimal:
    """What a sell may send: all holdings rounded DOWN to the step; 0 if below the exchange minimum."""
    amount = risk.floor_to_step(book.holdings, settings.amount_step)
    if settings.min_amount is not None and amount < settings.min_amount:
        return ZERO
    return amount


def book_fill(book: PairBook, fill, settings: PairSettings, now_ms: int, decision=None) -> FillOutcome:
    """Book one fill into the pair (the accounting half of an order). See module docstring."""
    if book.day is None:
        book.day = now_ms // DAY_MS
    if settings.market == "futures":
        return futures.book_fill(sys.modules[__name__], book, fill, settings, now_ms, decision)
    if fill.side == BUY:
        apply_buy(book, fill)
        entry = book.entry_price
        sl = getattr(decision, "stop_loss", None)
        tp = getattr(decision, "take_profit", None)
        book.stop_loss = (
            Decimal(sl) if sl is not None else risk.stop_loss_price(entry, settings.stop_loss_percent)
        )
        book.take_profit = (
            Decimal(tp) if tp is not None else risk.take_profit_price(entry, settings.take_profit_percent)
        )
        book.sl_f = float(book.stop_loss) if book.stop_loss is not None else None
        book.tp_f = float(book.take_profit) if book.take_profit is not None else None
        mark_to_market(book, fill.price)
        return FillOutcome(BUY, None, False, None)
    _, pnl = apply_sell(book, fill, settings.dust)
    closed = not book.in_position
    if closed:
        # a position closed by several sells is ONE trade: win or loss by its total, not by its last sell
        if book.position_pnl < ZERO:
            book.consecutive_losses += 1
            book.losses_today += 1
        else:
            book.consecutive_losses = 0
            book.wins_today += 1
    trip = None
    if not book.breaker_until_ms:
        trip = _evaluate(book, settings)
        if trip is not None:
            trip_breaker(book, trip, settings, now_ms)
    return FillOutcome(SELL, pnl, closed, trip)


def _evaluate(book: PairBook, settings: PairSettings) -> risk.Trip | None:
    return risk.evaluate_breaker(
        settings.limits,
        consecutive_losses=book.consecutive_losses,
        budget=book.budget,
        equity=book.equity,
        day_ref_equity=book.risk_day_ref,
        peak_ref_equity=book.risk_peak_ref,
    )


def trip_breaker(book: PairBook, trip: risk.Trip, settings: PairSettings, now_ms: int) -> int:
    """Pause opening positions until now + cooldown; move the risk references so that the same loss
    does not trip again at once when the pause ends."""
    book.breaker_until_ms = risk.breaker_until_ms(now_ms, settings.limits.cooldown_minutes)
    book.breaker_reason = f"{trip.kind}: {trip.detail}"
    _rebase(book)
    return book.breaker_until_ms


def _rebase(book: PairBook) -> None:
    book.consecutive_losses = 0
    book.risk_day_ref = book.equity
    book.risk_peak_ref = book.equity


def _clear_breaker(book: PairBook) -> None:
    book.breaker_until_ms = 0
    book.breaker_reason = None


def reset_breaker(book: PairBook) -> None:
    """User reset: resume at once, measuring further losses from the current equity."""
    _clear_breaker(book)
    _rebase(book)
