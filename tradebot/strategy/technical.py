"""Default decider: trend (EMA12 vs EMA26) + momentum (MACD histogram) + RSI filter.

Long-only spot: buy only when flat, sell only when holding.
- buy:  EMA12 above EMA26 by at least `min_gap_atr` ATRs (a crossover inside the candle noise
        is no trend: on short timeframes it mostly buys fees), MACD hist > 0 and rising, RSI below
        `rsi_overbought`.
- sell: (EMA12 < EMA26 and MACD hist < 0) or RSI >= `rsi_exit` (take an overbought exit).
`quick_action` is the cheap test run on every candle (the backtester calls it
directly on the live IndicatorSet); `decide` builds the full Decision with
confidence and reasoning only from it, so both paths agree by construction.
"""

from __future__ import annotations

from .base import Decision, DecisionContext

BUY, SELL, HOLD = "buy", "sell", "hold"


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class TechnicalDecider:
    name = "technical"

    def __init__(self, rsi_overbought: float = 70.0, rsi_exit: float = 80.0, trend_full: float = 0.005,
                 min_gap_atr: float = 0.5):
        self.rsi_overbought = rsi_overbought
        self.min_gap_atr = min_gap_atr
        self.rsi_exit = rsi_exit
        self.trend_full = trend_full  # EMA gap (fraction) that counts as a full-strength trend

    def quick_action(self, ind, holding: bool) -> str:
        """buy / sell / hold from indicator values only (IndicatorSet or IndicatorSnapshot)."""
        if not ind.ready:
            return HOLD
        hist = ind.macd_hist
        if holding:
            if (ind.ema_fast < ind.ema_slow and hist < 0.0) or ind.rsi >= self.rsi_exit:
                return SELL
            return HOLD
        if (ind.ema_fast - ind.ema_slow > self.min_gap_atr * ind.atr and hist > 0.0
                and hist > ind.prev_macd_hist and ind.rsi < self.rsi_overbought):
            return BUY
        return HOLD

    def decide(self, ctx: DecisionContext) -> Decision:
        ind = ctx.indicators
        if ind is None or not ind.ready:
            return Decision(HOLD, 0, "indicators warming up", self.name)
        action = self.quick_action(ind, ctx.position is not None)
        conf = self._confidence(ind, action)
        return Decision(action, conf, self._reasoning(ind, action), self.name, response=_dump(ind))

    def _confidence(self, ind, action: str) -> int:
        gap = (ind.ema_fast / ind.ema_slow - 1.0) / self.trend_full if ind.ema_slow else 0.0
        atr = ind.atr or 0.0
        mom = ind.macd_hist / (0.1 * atr) if atr > 0.0 else 0.0
        if action == BUY:
            room = (self.rsi_overbought - ind.rsi) / 20.0
            return int(round(50 + 20 * _clip01(gap) + 20 * _clip01(mom) + 10 * _clip01(room)))
        if action == SELL:
            if ind.rsi >= self.rsi_exit:
                return int(round(60 + 40 * _clip01((ind.rsi - self.rsi_exit) / 10.0)))
            return int(round(50 + 25 * _clip01(-gap) + 25 * _clip01(-mom)))
        # hold: how sure we are nothing should be done
        return int(round(50 + 50 * (1.0 - _clip01(abs(gap)))))

    def _reasoning(self, ind, action: str) -> str:
        trend = "uptrend" if ind.ema_fast > ind.ema_slow else "downtrend"
        rel = ">" if ind.ema_fast > ind.ema_slow else "<"
        h, ph = ind.macd_hist, ind.prev_macd_hist
        slope = "rising" if ph is not None and h > ph else "falling"
        text = f"EMA12{rel}EMA26 {trend}, MACD hist {h:+.4g} {slope}, RSI {ind.rsi:.0f}"
        if action == SELL and ind.rsi >= self.rsi_exit:
            text += " (overbought exit)"
        return text


def _dump(ind) -> str:
    describe = getattr(ind, "describe", None)
    return describe() if describe else ind.snapshot().describe()
