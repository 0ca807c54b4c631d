"""What a chart shows, as plain data (the services fill it from the user's own rows; tests inspect it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

# Marker kinds a fill is drawn as. Spot: buy / sell. Futures: entries and exits of long and short positions.
MARKER_KINDS = ("buy", "sell", "long_entry", "long_exit", "short_entry", "short_exit")


@dataclass(frozen=True)
class Marker:
    ts: int  # ms, time of the fill
    price: Decimal
    kind: str  # one of MARKER_KINDS
    trade_id: int


@dataclass(frozen=True)
class Level:
    label: str  # "entry" | "stop-loss" | "take-profit"
    price: Decimal


@dataclass(frozen=True)
class PriceChart:
    symbol: str
    exchange: str
    timeframe: str
    ts: list[int]  # candle open times, ms, oldest first
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    lines: dict[str, list[float | None]] = field(default_factory=dict)  # indicator name -> value per candle
    markers: list[Marker] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    price: Decimal | None = None
    pnl: Decimal | None = None
    pnl_percent: Decimal | None = None

    @property
    def last_ts(self) -> int | None:
        return self.ts[-1] if self.ts else None


@dataclass(frozen=True)
class EquitySeries:
    label: str
    ts: list[int]  # ms
    equity: list[float]
    hold: list[float]  # buy-and-hold of the same budget over the same candles


@dataclass(frozen=True)
class EquityChart:
    title: str
    series: list[EquitySeries]  # one per pair, or one total
    trips: list[int] = field(default_factory=list)  # ms of circuit-breaker trips
    equity: Decimal | None = None  # current total equity (title)
    pnl: Decimal | None = None
