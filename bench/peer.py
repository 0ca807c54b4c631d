"""The same EMA(12/26) cross on the same candles in tradebot's replay and in backtesting.py (optional, the
`bench` extra): speed ratio and a check that both traded the same signals. Used by bench/backtest.py."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

from tradebot.backtest.replay import BacktestConfig, run_backtest
from tradebot.engine.core import PairSettings
from tradebot.exchange.base import MarketRules
from tradebot.risk import BreakerLimits
from tradebot.strategy.indicators import IndicatorSet

FEE = 0.001
SHARE = 0.3  # of equity per entry, tradebot's default max_position_percent


class EmaCross:
    """Long when EMA12 crosses above EMA26, flat when it crosses below (no other filter)."""

    name = "ema-cross"

    def indicator_set(self):
        return IndicatorSet(12, 26)

    def quick_action(self, ind, holding, side="long", allow_short=False):
        f, s = ind.ema_fast, ind.ema_slow
        if s is None:
            return "hold"
        if not holding and f > s:
            return "buy"
        if holding and f < s:
            return "sell"
        return "hold"

    def decide(self, ctx):
        from tradebot.strategy.base import Decision

        return Decision(self.quick_action(ctx.indicators, ctx.position is not None), 100, "ema cross", self.name)


def tradebot_run(series):
    rules = MarketRules("X/USDT", "X", "USDT", Decimal("0.00000001"), None, None, None, Decimal(str(FEE)))
    off = BreakerLimits(0, Decimal(0), Decimal(0), 0)
    settings = PairSettings(Decimal(str(SHARE * 100)), Decimal(0), Decimal(0), 0, off, amount_step=rules.amount_step,
                            fee_rate=rules.taker_fee)
    return run_backtest(series, EmaCross(), BacktestConfig("X/USDT", "1m", rules, settings))


def _ema(values, n):
    """tradebot's EMA convention (seeded with the mean of the first n values), vectorised the way a
    backtesting.py user would write it (pandas ewm), so both sides see the same crossings."""
    import numpy as np
    import pandas as pd

    out = np.full(len(values), np.nan)
    if len(values) < n:
        return out
    seeded = np.concatenate(([np.mean(values[:n])], np.asarray(values[n:], dtype=float)))
    out[n - 1:] = pd.Series(seeded).ewm(alpha=2.0 / (n + 1), adjust=False).mean().to_numpy()
    return out


def peer_run(df):
    from backtesting import Backtest, Strategy

    class Cross(Strategy):
        def init(self):
            self.f = self.I(_ema, self.data.Close, 12)
            self.s = self.I(_ema, self.data.Close, 26)

        def next(self):
            f, s = self.f[-1], self.s[-1]
            if not self.position and f > s:
                self.buy(size=SHARE)
            elif self.position and f < s:
                self.position.close()

    bt = Backtest(df, Cross, cash=1_000_000, commission=FEE, finalize_trades=True)
    return bt.run()


def compare(series, repeat: int) -> list[str]:
    try:
        import pandas as pd
        from backtesting import __version__ as peer_version
    except ImportError:
        return ["peer            skipped (backtesting.py not installed: pip install -e '.[bench]')"]
    import warnings

    warnings.filterwarnings("ignore")
    df = pd.DataFrame({"Open": series.open, "High": series.high, "Low": series.low, "Close": series.close,
                       "Volume": series.volume}, index=pd.to_datetime(series.ts, unit="ms"))
    ours, theirs, res, stats = [], [], None, None
    for _ in range(repeat):  # CPU time: steadier than wall time when other processes share the cores
        t = time.process_time()
        res = tradebot_run(series)
        ours.append(time.process_time() - t)
        t = time.process_time()
        stats = peer_run(df)
        theirs.append(time.process_time() - t)
    n = len(series)
    a, b = statistics.median(ours), statistics.median(theirs)
    ours_trades = len(res.trades)
    return [
        f"EMA(12/26) cross, same {n:,} candles, {repeat} runs each (median CPU time):",
        f"  tradebot replay  {a:.3f} s  {n / a:,.0f} candles/s  {ours_trades} trades",
        f"  backtesting.py   {b:.3f} s  {n / b:,.0f} candles/s  {int(stats['# Trades'])} trades "
        f"(version {peer_version})",
        f"  ratio            tradebot is {b / a:.2f}x as fast  (goal >= 2x)",
    ]
