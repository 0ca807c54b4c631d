"""Futures risk rules as pure functions: liquidation price, the stop-loss safety margin, short exits,
trailing stops and funding times (the step itself: engine/futures.py).

Model (USDT-margined linear perpetual, one-way mode, isolated margin; README "Futures" has the numbers):
- margin = entry x amount / leverage; notional = margin x leverage.
- liquidation when the loss eats the margin down to the maintenance margin (`mmr` x notional):
  long  liq = entry x (1 - 1/leverage + mmr),  short liq = entry x (1 + 1/leverage - mmr).
  The position is then settled at the bankruptcy price (entry x (1 -/+ 1/leverage)): the whole margin is lost.
- a stop-loss must sit well inside the liquidation price: its distance from entry is at most
  SAFE_FRACTION of the liquidation distance, so a price shock hits the stop long before the liquidation.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
LIQUIDATION = "liquidation"
DEFAULT_MMR = Decimal("0.005")  # maintenance margin rate (Binance/Bybit BTC tier 1: 0.4-0.5 %)
SAFE_FRACTION = Decimal("0.5")  # the stop-loss may use at most half the distance to liquidation
FUNDING_MS = 8 * 3_600_000  # funding at 00:00, 08:00, 16:00 UTC


def sign(side: str) -> int:
    return -1 if side == "short" else 1


def liquidation_price(entry: Decimal, leverage: int, side: str, mmr: Decimal = DEFAULT_MMR) -> Decimal:
    lev = Decimal(leverage)
    if side == "short":
        return entry * (ONE + ONE / lev - mmr)
    return entry * (ONE - ONE / lev + mmr)


def bankruptcy_price(entry: Decimal, leverage: int, side: str) -> Decimal:
    lev = Decimal(leverage)
    return entry * (ONE + ONE / lev) if side == "short" else entry * (ONE - ONE / lev)


def liquidation_distance_percent(leverage: int, mmr: Decimal = DEFAULT_MMR) -> Decimal:
    """How far (in % of entry) the price may move against a position before it is liquidated."""
    return (ONE / Decimal(leverage) - mmr) * HUNDRED


def max_safe_stop_loss(leverage: int, mmr: Decimal = DEFAULT_MMR) -> Decimal:
    """The largest stop-loss % that still sits well inside the liquidation price at `leverage`."""
    return (liquidation_distance_percent(leverage, mmr) * SAFE_FRACTION).quantize(Decimal("0.01"))


def stop_loss_problem(leverage: int, stop_loss_percent: Decimal, mmr: Decimal = DEFAULT_MMR) -> str | None:
    """Plain words when the stop-loss does not sit well inside the liquidation price, else None."""
    if stop_loss_percent is None or stop_loss_percent <= ZERO:
        return (f"a futures pair needs a stop-loss: at {leverage}x a move of "
                f"{liquidation_distance_percent(leverage, mmr):.2f}% liquidates the position")
    safe = max_safe_stop_loss(leverage, mmr)
    if stop_loss_percent > safe:
        return (f"at {leverage}x the position is liquidated after a {liquidation_distance_percent(leverage, mmr):.2f}% "
                f"move against it; the stop-loss {stop_loss_percent:f}% must be at most {safe:f}% (half of that)")
    return None


def stop_price(entry: Decimal, percent: Decimal, side: str) -> Decimal | None:
    if percent is None or percent <= ZERO:
        return None
    return entry * (HUNDRED + percent) / HUNDRED if side == "short" else entry * (HUNDRED - percent) / HUNDRED


def target_price(entry: Decimal, percent: Decimal, side: str) -> Decimal | None:
    if percent is None or percent <= ZERO:
        return None
    return entry * (HUNDRED - percent) / HUNDRED if side == "short" else entry * (HUNDRED + percent) / HUNDRED


def trailed_stop(current: Decimal | None, best: float, percent: Decimal, side: str) -> Decimal | None:
    """The stop moved to `percent` from the best price seen, never loosened. None: unchanged."""
    if percent is None or percent <= ZERO:
        return None
    b = Decimal(repr(best))
    if side == "short":
        new = b * (HUNDRED + percent) / HUNDRED
        return new if current is None or new < current else None
    new = b * (HUNDRED - percent) / HUNDRED
    return new if current is None or new > current else None


def funding_time(now_ms: int) -> int:
    """The latest funding time at or before `now_ms`."""
    return now_ms - now_ms % FUNDING_MS


def funding_payment(side: str, amount: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the position PAYS (+) or receives (-): notional at mark x rate; longs pay a positive rate."""
    return sign(side) * amount * mark * rate
