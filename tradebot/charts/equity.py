"""An equity curve rebuilt from a pair's fills and candles (pure): equity = cash + holdings x close.

The engine keeps only the latest snapshot of a pair (user_states), so the history is replayed from the
booked trades: a buy spends its net quote and adds its net base, a sell does the reverse."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Candle timeframes an equity chart may use, finest first, and their length in ms.
GRID = (("1m", 60_000), ("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000), ("4h", 14_400_000),
        ("1d", 86_400_000))


@dataclass(frozen=True)
class FillStep:
    ts: int  # ms
    base: Decimal  # + bought, - sold (net of a base fee)
    quote: Decimal  # + received, - spent (net of a quote fee)


def grid_timeframe(since_ms: int, now_ms: int, max_candles: int) -> tuple[str, int]:
    """The finest timeframe whose `max_candles` candles reach back to `since_ms`."""
    span = max(0, now_ms - since_ms)
    for name, ms in GRID:
        if span // ms + 2 <= max_candles:
            return name, ms
    return GRID[-1]


def equity_curve(budget: Decimal, steps: list[FillStep], ts: list[int], close: list[float],
                 interval_ms: int) -> list[float]:
    """Equity at each candle's close: the fills up to that close applied to the budget."""
    steps = sorted(steps, key=lambda s: s.ts)
    cash, held = Decimal(budget), Decimal(0)
    out: list[float] = []
    i = 0
    for t, c in zip(ts, close, strict=True):
        end = t + interval_ms
        while i < len(steps) and steps[i].ts < end:
            cash += steps[i].quote
            held += steps[i].base
            i += 1
        out.append(float(cash) + float(held) * c)
    return out


def hold_curve(budget: Decimal, close: list[float]) -> list[float]:
    """Buy-and-hold of the budget from the first candle's close."""
    if not close or not close[0]:
        return [float(budget)] * len(close)
    k = float(budget) / close[0]
    return [k * c for c in close]
