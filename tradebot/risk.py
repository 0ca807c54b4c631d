"""Risk rules as pure functions: position sizing, stop-loss / take-profit, circuit breaker, order minimums.

No I/O and no state: the engine (live, paper) and the backtester call the same functions through
`tradebot.engine.core`.

Conventions
- Money is Decimal. Candle prices are floats (see strategy.base.Candle); the exit check compares floats
  so that the per-candle path stays cheap, and the trigger price it returns is the float it compared.
- Intra-candle ambiguity: when one candle's range contains BOTH the stop-loss and the take-profit price,
  the order of the touches inside the candle is unknown. We assume the worse case: the STOP-LOSS wins.
  This keeps backtests conservative (never better than what live trading could have done).
- Gaps: if a candle OPENS beyond a level (gap down through the stop, gap up through the target), the
  trigger price is the open, which is what a market order would have got.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)
HUNDRED = Decimal(100)
QUOTE_QUANTUM = Decimal("0.00000001")

STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"

# breaker kinds (RiskEvent.kind)
CONSECUTIVE_LOSSES = "consecutive_losses"
DAILY_LOSS = "daily_loss"
DRAWDOWN = "drawdown"


# ------------------------------------------------------------------ sizing


def position_size(
    equity: Decimal, cash: Decimal, max_position_percent: Decimal, fee_rate: Decimal = ZERO
) -> Decimal:
    """Quote amount to spend on a new position: `max_position_percent` of the pair's equity, capped by the
    pair's free cash (less the fee when the fee is charged on top in quote). Rounded down to 1e-8.
    Never negative, never more than `cash`."""
    if cash <= ZERO or equity <= ZERO or max_position_percent <= ZERO:
        return ZERO
    want = equity * max_position_percent / HUNDRED
    cap = cash / (1 + fee_rate) if fee_rate else cash
    size = want if want < cap else cap
    return size.quantize(QUOTE_QUANTUM, rounding=ROUND_DOWN)


def floor_to_step(amount: Decimal, step: Decimal | None) -> Decimal:
    """Round an amount DOWN to the exchange's step (never sell more than held)."""
    if amount <= ZERO:
        return ZERO
    if not step:
        return amount
    return (amount // step) * step


def check_minimums(
    amount: Decimal | None, cost: Decimal, min_amount: Decimal | None, min_cost: Decimal | None
) -> str | None:
    """ccxt does not enforce `limits.amount.min` / `limits.cost.min`: check before sending.
    Returns a plain reason or None when the order is acceptable."""
    if cost <= ZERO or (amount is not None and amount <= ZERO):
        return "order size is zero"
    if min_cost is not None and cost < min_cost:
        return f"order value {cost:f} is below the exchange minimum {min_cost:f}"
    if amount is not None and min_amount is not None and amount < min_amount:
        return f"order amount {amount:f} is below the exchange minimum {min_amount:f}"
    return None


# ------------------------------------------------------------------ stop-loss / take-profit


def stop_loss_price(entry: Decimal, percent: Decimal) -> Decimal | None:
    """Long position: entry * (1 - percent/100). None when percent <= 0 (disabled)."""
    if percent is None or percent <= ZERO:
        return None
    return entry * (HUNDRED - percent) / HUNDRED


def take_profit_price(entry: Decimal, percent: Decimal) -> Decimal | None:
    """Long position: entry * (1 + percent/100). None when percent <= 0 (disabled)."""
    if percent is None or percent <= ZERO:
        return None
    return entry * (HUNDRED + percent) / HUNDRED


def check_exit(
    stop_loss: float | None, take_profit: float | None, candles: Iterable, last_price: float | None = None
) -> tuple[str, float, int | None] | None:
    """First exit hit by a long position, scanning the candles since the last cycle oldest first, then the
    last price. Returns (reason, trigger_price, candle_ts or None for the last price) or None.

    Within one candle: low <= stop AND high >= target -> STOP-LOSS (conservative, see module doc)."""
    if stop_loss is None and take_profit is None:
        return None
    sl = stop_loss if stop_loss is not None else float("-inf")
    tp = take_profit if take_profit is not None else float("inf")
    for c in candles:
        if c.low <= sl:
            return STOP_LOSS, (c.open if c.open < sl else sl), c.ts
        if c.high >= tp:
            return TAKE_PROFIT, (c.open if c.open > tp else tp), c.ts
    if last_price is not None:
        if last_price <= sl:
            return STOP_LOSS, last_price, None
        if last_price >= tp:
            return TAKE_PROFIT, last_price, None
    return None


# ------------------------------------------------------------------ circuit breaker


@dataclass(frozen=True, slots=True)
class BreakerLimits:
    max_consecutive_losses: int = 5  # 0 disables
    daily_loss_limit_percent: Decimal = Decimal(5)  # of the budget; 0 disables
    max_drawdown_percent: Decimal = Decimal(15)  # from peak equity; 0 disables
    cooldown_minutes: int = 60  # 0 = until reset by the user


@dataclass(frozen=True, slots=True)
class Trip:
    kind: str  # consecutive_losses | daily_loss | drawdown
    value: Decimal  # observed value
    threshold: Decimal
    detail: str


def evaluate_breaker(
    limits: BreakerLimits,
    *,
    consecutive_losses: int,
    budget: Decimal,
    equity: Decimal | None,
    day_ref_equity: Decimal | None,
    peak_ref_equity: Decimal | None,
) -> Trip | None:
    """Should the breaker trip?  Checked in this order:
    - `consecutive_losses` >= max_consecutive_losses (losing closed trades in a row);
    - daily loss: day_ref_equity - equity >= daily_loss_limit_percent of `budget`;
    - drawdown: (peak_ref_equity - equity) / peak_ref_equity >= max_drawdown_percent.
    `day_ref_equity` is the equity at 00:00 UTC (or at the last trip/reset that day), `peak_ref_equity`
    the peak since the last trip/reset; callers move both refs on a trip so that a breaker that expired
    does not trip again at once on the same, already-paid-for loss."""
    n = limits.max_consecutive_losses
    if n and consecutive_losses >= n:
        return Trip(
            CONSECUTIVE_LOSSES,
            Decimal(consecutive_losses),
            Decimal(n),
            f"{consecutive_losses} losing trade{'s' if consecutive_losses != 1 else ''} in a row",
        )
    if equity is None:
        return None
    pct = limits.daily_loss_limit_percent
    if pct and pct > ZERO and day_ref_equity is not None and budget > ZERO:
        loss = day_ref_equity - equity
        limit = budget * pct / HUNDRED
        if loss >= limit:
            return Trip(DAILY_LOSS, loss, limit, f"daily loss {loss:.2f} >= {pct:f}% of budget {budget:.2f}")
    dd = limits.max_drawdown_percent
    if dd and dd > ZERO and peak_ref_equity is not None and peak_ref_equity > ZERO:
        draw = (peak_ref_equity - equity) * HUNDRED / peak_ref_equity
        if draw >= dd:
            return Trip(
                DRAWDOWN, draw, dd, f"drawdown {draw:.2f}% from peak {peak_ref_equity:.2f} >= {dd:f}%"
            )
    return None


def breaker_until_ms(now_ms: int, cooldown_minutes: int) -> int:
    """End of the pause in ms. cooldown 0 means 'until reset': a far-future sentinel."""
    if cooldown_minutes <= 0:
        return UNTIL_RESET_MS
    return now_ms + cooldown_minutes * 60_000


UNTIL_RESET_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
