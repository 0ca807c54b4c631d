"""Backtester: replays candles through the live trading core (engine.core) with the paper broker's fills.

    series = load_candles(path); series = resample(series, timeframe_ms("1h"))
    result = run_backtest(series, decider, BacktestConfig(...)); report = build_report(result)
"""

from .data import DataError, Series, load_candles, resample, timeframe_ms, window
from .replay import BacktestConfig, BacktestResult, BreakerTrip, TradeRecord, run_backtest
from .report import build_report, format_text, write_trades_csv

__all__ = [
    "BacktestConfig", "BacktestResult", "BreakerTrip", "DataError", "Series", "TradeRecord", "build_report",
    "format_text", "load_candles", "resample", "run_backtest", "timeframe_ms", "window", "write_trades_csv",
]
