"""Contracts of the decision engine, shared by live trading and the backtester."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple, Protocol


class Candle(NamedTuple):
    """One OHLCV bar. Prices are floats: indicators are not money; fills
    convert a price to Decimal via str() at the edge."""

    ts: int  # open time, ms since epoch, UTC
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class PositionView:
    amount: Decimal  # base held, net of fees (futures: contracts in base, always positive)
    entry_price: Decimal
    side: str = "long"  # long | short (short only on futures pairs)


@dataclass(frozen=True, slots=True)
class DecisionContext:
    symbol: str
    timeframe: str
    candles: Sequence[Candle]  # closed candles, oldest first, last = newest closed
    indicators: object | None  # an IndicatorSnapshot from strategy.indicators, shared per candle
    position: PositionView | None
    cash: Decimal
    equity: Decimal
    last_price: Decimal
    allow_short: bool = False  # True only for futures pairs whose direction allows shorts


@dataclass(slots=True)
class Decision:
    # "buy" | "sell" | "hold" | "short" | "close". Spot: short = hold, close = sell. Futures: buy opens a long
    # (closes a short first), short opens a short (closes a long first), sell closes a long, close closes any.
    action: str
    confidence: int  # 0..100
    reasoning: str
    provider: str  # "technical" | "llm:<model>" | "ensemble"
    inputs: str = ""  # market summary / prompt sent
    response: str = ""  # raw answer (LLM) or indicator dump
    stop_loss: Decimal | None = None  # optional absolute price
    take_profit: Decimal | None = None
    parts: list[Decision] = field(default_factory=list)  # ensemble members
    call: object | None = None  # an LLM member's strategy.llm_shared.MemberCall (answer, tokens, cost)


class Decider(Protocol):
    name: str

    def decide(self, ctx: DecisionContext) -> Decision: ...
