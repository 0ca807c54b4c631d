"""Backtest speed: candles per second for the default (technical) decider on 1-minute data.

Usage: python bench/backtest.py [FILE] [--data-dir DIR] [--repeat N]
Default FILE: the largest 1m file in DIR (default: the repository's tests/data). File parsing is timed
separately and excluded from the candles/s figure; the replay (indicators + decider + live trading core + paper
fills + equity curve) is run N times on the same candles and the median and best runs are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tradebot.backtest.data import load_candles  # noqa: E402
from tradebot.backtest.replay import BacktestConfig, run_backtest  # noqa: E402
from tradebot.backtest.report import build_report  # noqa: E402
from tradebot.engine.core import PairSettings  # noqa: E402
from tradebot.exchange.base import MarketRules  # noqa: E402
from tradebot.strategy.indicators import IndicatorSet  # noqa: E402
from tradebot.strategy.technical import TechnicalDecider  # noqa: E402

TARGET = 200_000


DATA_DIR = ROOT / "tests" / "data"


def largest_1m_file(klines: Path) -> Path:
    files = sorted(klines.glob("*-1m-*.csv*"), key=lambda p: (sum(1 for _ in _lines(p)), p.name))
    if not files:
        sys.exit(f"no 1m kline files in {klines}")
    return files[-1]


def _lines(p: Path):
    import gzip

    with (gzip.open(p, "rt") if p.suffix == ".gz" else open(p)) as f:
        yield from f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", help="candle file (default: the largest 1m file in --data-dir)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default: {DATA_DIR.relative_to(ROOT)}")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    path = Path(args.file) if args.file else largest_1m_file(args.data_dir)

    t = time.perf_counter()
    s = load_candles(path)
    parse_s = time.perf_counter() - t
    n = len(s)

    rules = MarketRules("X/USDT", "X", "USDT", Decimal("0.00000001"), None, None, None, Decimal("0.001"))
    cfg = BacktestConfig("X/USDT", "1m", rules, PairSettings(fee_rate=rules.taker_fee, amount_step=rules.amount_step))
    runs, cpu, result = [], [], None
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        result = run_backtest(s, TechnicalDecider(), cfg)
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    rep = build_report(result)

    # the indicator update alone, for scale
    t = time.perf_counter()
    iset = IndicatorSet()
    up, ts, hi, lo, cl = iset.update, s.ts, s.high, s.low, s.close
    for i in range(n):
        up(ts[i], hi[i], lo[i], cl[i])
    ind_s = time.perf_counter() - t

    med, best = statistics.median(runs), min(runs)
    print(f"file            {path.name} ({n:,} candles, 1m)")
    print(f"machine         {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    print(f"parse           {parse_s:.3f} s ({n / parse_s:,.0f} rows/s, not included below)")
    print(f"replay          {args.repeat} runs of {n:,} candles: median {med:.3f} s, best {best:.3f} s")
    print(f"candles/s       {n / med:,.0f} (median), {n / best:,.0f} (best)  target {TARGET:,}: "
          f"{'PASS' if n / med >= TARGET else 'FAIL'}")
    print(f"CPU-time rate   {n / statistics.median(cpu):,.0f} candles/s (median; steadier when other "
          f"processes share the cores)")
    print(f"indicators only {n / ind_s:,.0f} candles/s")
    print(f"run summary     {rep['trades']} trades, exposure {rep['exposure_percent']} %, "
          f"return {rep['return_percent']} %, {rep['circuit_breaker_trips']} breaker trips")

    from peer import compare  # bench/peer.py: the same EMA cross in backtesting.py, if installed

    for line in compare(s, max(1, args.repeat // 2)):
        print(line)


if __name__ == "__main__":
    main()
