"""Default decider: trend (fast EMA vs slow EMA) + momentum (MACD histogram) + RSI filter, with named parameters.

Long (spot and futures):
- buy:  fast EMA above slow EMA by at least `min_gap_atr` ATRs (a crossover inside the candle noise
        is no trend: on short timeframes it mostly buys fees), MACD hist > 0 and rising, RSI below
        `rsi_overbought`, and the candles move enough to pay the fees (`min_edge`, below).
- sell: (fast EMA < slow EMA and MACD hist < 0) or RSI >= `rsi_exit` (take an overbought exit).
Short (only when the context allows shorts, i.e. a futures pair whose direction allows them): the mirror
image. `short` when the buy rule holds upside down (RSI above 100 - `rsi_overbought`), `close` a short when
(fast EMA > slow EMA and MACD hist > 0) or RSI <= 100 - `rsi_exit`. Spot pairs never see short/close.

Minimum edge vs the fee: a trade pays the taker fee twice (in and out). The expected move of the next
candles is estimated as one ATR (the average true range of a candle) as a fraction of the price; an entry
needs `ATR / close >= min_edge * 2 * fee_rate`. 0 switches the filter off.

`quick_action` is the cheap test run on every candle (the backtester calls it directly on the live
IndicatorSet); `decide` builds the full Decision with confidence and reasoning only from it, so both paths
agree by construction. Indicator periods other than the shared defaults (12/26/9, RSI 14, Bollinger 20/2,
ATR 14) are computed by the decider itself from the context's candles when the engine's shared snapshot was
made with the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .base import Decision, DecisionContext
from .indicators import DEFAULT_PERIODS, IndicatorSet

BUY, SELL, HOLD, SHORT, CLOSE = "buy", "sell", "hold", "short", "close"


@dataclass(frozen=True)
class TechnicalParams:
    """The technical decider's named parameters (searchable with `tradebot evaluate`, set by presets)."""

    ema_fast: int = 12
    ema_slow: int = 26
    macd_signal: int = 9
    rsi_period: int = 14
    bb_period: int = 20
    bb_k: float = 2.0
    atr_period: int = 14
    rsi_overbought: float = 70.0
    rsi_exit: float = 80.0
    min_gap_atr: float = 0.5
    trend_full: float = 0.005  # EMA gap (fraction) that counts as a full-strength trend (confidence only)
    min_edge: float = 1.0  # expected move (1 ATR) must be >= min_edge round-trip fees; 0 = off
    fee_rate: float = 0.001  # taker fee the edge filter compares with

    @property
    def periods(self) -> tuple:
        return (self.ema_fast, self.ema_slow, self.macd_signal, self.rsi_period, self.bb_period,
                float(self.bb_k), self.atr_period)

    @property
    def warmup(self) -> int:
        """Candles before every indicator is ready (MACD needs slow + signal, +1 for the previous hist)."""
        return max(self.ema_slow + self.macd_signal, self.rsi_period + 1, self.bb_period, self.atr_period) + 1

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], base: TechnicalParams | None = None) -> TechnicalParams:
        """Named values (numbers or numeric strings) over `base`; ValueError with one line on a bad one."""
        base = base or cls()
        kinds = {f.name: f.type for f in fields(cls)}
        kw = {}
        for key, raw in values.items():
            if key not in kinds:
                raise ValueError(f"unknown technical parameter {key!r} (known: {', '.join(kinds)})")
            try:
                num = float(str(raw).strip())
                if kinds[key] == "int":
                    if num != int(num):
                        raise ValueError
                    num = int(num)
            except ValueError:
                raise ValueError(f"{key}={raw!r}: not a {'whole ' if kinds[key] == 'int' else ''}number") from None
            kw[key] = num
        return replace(base, **kw).checked()

    def checked(self) -> TechnicalParams:
        """Self, or ValueError naming the first parameter out of its range."""
        def need(ok: bool, text: str) -> None:
            if not ok:
                raise ValueError(text)

        for name in ("ema_fast", "ema_slow", "macd_signal", "rsi_period", "bb_period", "atr_period"):
            need(2 <= getattr(self, name) <= 500, f"{name} must be between 2 and 500")
        need(self.ema_fast < self.ema_slow, "ema_fast must be below ema_slow")
        need(0 < self.bb_k <= 10, "bb_k must be above 0 and at most 10")
        need(50 <= self.rsi_overbought <= 100, "rsi_overbought must be between 50 and 100")
        need(50 <= self.rsi_exit <= 100, "rsi_exit must be between 50 and 100")
        need(0 <= self.min_gap_atr <= 20, "min_gap_atr must be between 0 and 20")
        need(0 < self.trend_full <= 1, "trend_full must be above 0 and at most 1")
        need(0 <= self.min_edge <= 100, "min_edge must be between 0 and 100")
        need(0 <= self.fee_rate < 0.1, "fee_rate must be between 0 and 0.1")
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class TechnicalDecider:
    name = "technical"

    def __init__(self, params: TechnicalParams | None = None, **overrides: Any):
        p = params or TechnicalParams()
        if overrides:
            p = replace(p, **overrides)
        self.params = p.checked()
        self.rsi_overbought, self.rsi_exit = p.rsi_overbought, p.rsi_exit
        self.min_gap_atr, self.trend_full = p.min_gap_atr, p.trend_full
        self.rsi_oversold, self.rsi_exit_short = 100.0 - p.rsi_overbought, 100.0 - p.rsi_exit
        self.min_range = p.min_edge * 2.0 * p.fee_rate  # ATR / close needed to enter
        self.periods = p.periods

    def indicator_set(self) -> IndicatorSet:
        """A fresh IndicatorSet with this decider's periods (the backtester feeds it)."""
        return IndicatorSet(*self.periods)

    def quick_action(self, ind, holding: bool, side: str = "long", allow_short: bool = False) -> str:
        """buy / sell / short / close / hold from indicator values only (IndicatorSet or IndicatorSnapshot).
        `holding`: a position is open; `side`: its side ("long" | "short")."""
        if not ind.ready:
            return HOLD
        hist = ind.macd_hist
        if holding:
            if side == "short":
                if (ind.ema_fast > ind.ema_slow and hist > 0.0) or ind.rsi <= self.rsi_exit_short:
                    return CLOSE
                return HOLD
            if (ind.ema_fast < ind.ema_slow and hist < 0.0) or ind.rsi >= self.rsi_exit:
                return SELL
            return HOLD
        gap = ind.ema_fast - ind.ema_slow
        need = self.min_gap_atr * ind.atr
        if gap > need and hist > 0.0 and hist > ind.prev_macd_hist and ind.rsi < self.rsi_overbought:
            return BUY if ind.atr >= self.min_range * ind.close else HOLD
        if (allow_short and -gap > need and hist < 0.0 and hist < ind.prev_macd_hist
                and ind.rsi > self.rsi_oversold):
            return SHORT if ind.atr >= self.min_range * ind.close else HOLD
        return HOLD

    def decide(self, ctx: DecisionContext) -> Decision:
        ind = ctx.indicators
        if ind is not None and getattr(ind, "periods", DEFAULT_PERIODS) != self.periods:
            ind = self._own_indicators(ctx)  # the shared snapshot was made with other periods
        if ind is None or not ind.ready:
            return Decision(HOLD, 0, "indicators warming up", self.name)
        pos = ctx.position
        side = getattr(pos, "side", "long") if pos is not None else "long"
        action = self.quick_action(ind, pos is not None, side, getattr(ctx, "allow_short", False))
        conf = self._confidence(ind, action)
        return Decision(action, conf, self._reasoning(ind, action), self.name, response=_dump(ind))

    def _own_indicators(self, ctx: DecisionContext):
        iset = self.indicator_set()
        iset.feed(ctx.candles)
        return iset.snapshot()

    def _confidence(self, ind, action: str) -> int:
        gap = (ind.ema_fast / ind.ema_slow - 1.0) / self.trend_full if ind.ema_slow else 0.0
        atr = ind.atr or 0.0
        mom = ind.macd_hist / (0.1 * atr) if atr > 0.0 else 0.0
        if action == BUY:
            room = (self.rsi_overbought - ind.rsi) / 20.0
            return int(round(50 + 20 * _clip01(gap) + 20 * _clip01(mom) + 10 * _clip01(room)))
        if action == SHORT:
            room = (ind.rsi - self.rsi_oversold) / 20.0
            return int(round(50 + 20 * _clip01(-gap) + 20 * _clip01(-mom) + 10 * _clip01(room)))
        if action == SELL:
            if ind.rsi >= self.rsi_exit:
                return int(round(60 + 40 * _clip01((ind.rsi - self.rsi_exit) / 10.0)))
            return int(round(50 + 25 * _clip01(-gap) + 25 * _clip01(-mom)))
        if action == CLOSE:
            if ind.rsi <= self.rsi_exit_short:
                return int(round(60 + 40 * _clip01((self.rsi_exit_short - ind.rsi) / 10.0)))
            return int(round(50 + 25 * _clip01(gap) + 25 * _clip01(mom)))
        # hold: how sure we are nothing should be done
        return int(round(50 + 50 * (1.0 - _clip01(abs(gap)))))

    def _reasoning(self, ind, action: str) -> str:
        p = self.params
        trend = "uptrend" if ind.ema_fast > ind.ema_slow else "downtrend"
        rel = ">" if ind.ema_fast > ind.ema_slow else "<"
        h, ph = ind.macd_hist, ind.prev_macd_hist
        slope = "rising" if ph is not None and h > ph else "falling"
        text = f"EMA{p.ema_fast}{rel}EMA{p.ema_slow} {trend}, MACD hist {h:+.4g} {slope}, RSI {ind.rsi:.0f}"
        if action == SELL and ind.rsi >= self.rsi_exit:
            text += " (overbought exit)"
        if action == CLOSE and ind.rsi <= self.rsi_exit_short:
            text += " (oversold exit)"
        return text


def _dump(ind) -> str:
    describe = getattr(ind, "describe", None)
    return describe() if describe else ind.snapshot().describe()
