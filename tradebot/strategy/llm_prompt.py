"""What an LLM member is told: the system prompt and the market prompt.

The market prompt holds only what every pair in the same market and position state shares (see
llm_shared.py), each input under a heading that says what it is, and is bounded to `max_chars`: optional
context sections are cut first, the core (price, candles, indicators, state) never.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import DecisionContext

SYSTEM_PROMPT = (
    "You are the decision module of a crypto trading bot. Given the market summary and the position state, "
    "answer with ONE JSON object and nothing else: "
    '{"action": "buy" | "sell" | "short" | "close" | "hold", "confidence": integer 0-100, '
    '"reasoning": one short sentence, "stop_loss": optional absolute price or null, '
    '"take_profit": optional absolute price or null}. '
    "buy opens a long (only when flat or short), sell closes a long, short opens a short (only when shorts "
    "are allowed), close closes whatever is open, hold does nothing."
)


@dataclass(frozen=True)
class MarketInfo:
    """What the engine adds for LLM members: where the market is, optional context sections (fetched once
    per market and shared), and the gate that enforces budgets and stores answers (None in backtests)."""

    exchange: str = ""
    market_type: str = "spot"
    sections: tuple[tuple[str, str], ...] = ()  # (heading, text)
    gate: object | None = None


def position_state(ctx: DecisionContext) -> str:
    if ctx.position is None:
        return "flat"
    return "short" if getattr(ctx.position, "side", "long") == "short" else "long"


def market_prompt(ctx: DecisionContext, market: MarketInfo | None = None, history: int = 24,
                  max_chars: int = 6000) -> str:
    market = market or MarketInfo()
    where = f" on {market.exchange}" if market.exchange else ""
    kind = "USDT-M perpetual futures" if market.market_type == "futures" else "spot"
    lines = [f"Market: {ctx.symbol}{where} ({kind}), timeframe {ctx.timeframe}"]
    recent = list(ctx.candles[-history:])
    if recent:
        last = recent[-1]
        lines.append(f"Last closed candle: open time {last.ts} ms UTC, close {last.close:.8g}")
        hi = max(c.high for c in recent)
        lo = min(c.low for c in recent)
        first = recent[0]
        chg = (last.close / first.open - 1.0) * 100 if first.open else 0.0
        lines.append(
            f"Last {len(recent)} candles: open {first.open:.8g}, high {hi:.8g}, low {lo:.8g}, "
            f"close {last.close:.8g}, change {chg:+.2f}%"
        )
        lines.append("Recent closes (oldest first): " + ", ".join(f"{c.close:.8g}" for c in recent[-10:]))
        # the close, not the live ticker: pairs that cycle at different seconds of the candle share the prompt
        lines.append(f"Last price: {last.close:.8g} (close of the last candle)")
    else:
        lines.append(f"Last price: {ctx.last_price}")
    ind = ctx.indicators
    if ind is not None:
        describe = getattr(ind, "describe", None)
        lines.append("Indicators (this timeframe): " + (describe() if describe else str(ind)))
    state = position_state(ctx)
    lines.append({"flat": "Position: none (flat)", "long": "Position: long (open)",
                  "short": "Position: short (open)"}[state])
    lines.append("Shorts allowed: " + ("yes" if getattr(ctx, "allow_short", False) else "no"))
    text = "\n".join(lines)
    for heading, body in market.sections:
        block = f"\n{heading}:\n{body}"
        room = max_chars - len(text)
        if room <= len(heading) + 40:
            break
        if len(block) > room:
            block = block[: room - 4].rsplit("\n", 1)[0] + "\n..."
        text += block
    return text[:max_chars]
