"""Walk-forward evaluation, the running part: one backtest per (file, window span, parameter set), spread over
worker processes. Results come back in task order whatever the number of workers, so a run is identical
with --jobs 1 and --jobs N (every backtest is deterministic and sees only its own span)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal

from ..engine.core import PairSettings
from ..exchange.base import MarketRules
from ..strategy.technical import TechnicalDecider, TechnicalParams
from . import evaluate as ev
from .data import DataError, Series, load_candles, resample, timeframe_ms, timeframe_name, window
from .file_symbol import file_symbol
from .replay import BacktestConfig, run_backtest
from .report import max_drawdown_pct

WARMUP = 200  # candles before a span fed to the indicators only (as `tradebot backtest --from`)
DEFAULT_STEP = Decimal("0.00000001")


@dataclass(frozen=True)
class EvalSpec:
    paths: tuple[str, ...]
    grid: tuple[dict, ...]  # expanded parameter sets (evaluate.expand_grid)
    train_ms: int
    test_ms: int
    timeframe: str | None = None  # default timeframe (None: the file's) unless the grid names one
    settings: PairSettings = field(default_factory=PairSettings)
    technical: TechnicalParams = field(default_factory=TechnicalParams)
    fee: Decimal = Decimal("0.001")
    balance: Decimal = Decimal(1000)
    min_trades: int = 3
    rules: tuple = (DEFAULT_STEP, None, None)  # amount_step, min_amount, min_cost (`--set`, as in backtest)
    run_options: tuple = ()  # (key, value) pairs for BacktestConfig: exit_fill, interval_seconds


@functools.lru_cache(maxsize=256)  # read once per file and process, not once per backtest
def symbol_of(path: str) -> str:
    found = file_symbol(path)
    if found and found.endswith("USDT") and len(found) > 4:
        return f"{found[:-4]}/USDT"
    return found or "X/USDT"


# ---------------------------------------------------------------- worker side

_SPEC: EvalSpec | None = None
_SERIES: dict[tuple[int, str | None], Series] = {}


def _init(spec: EvalSpec) -> None:
    global _SPEC
    _SPEC = spec


def _series(spec: EvalSpec, file_idx: int, tf: str | None) -> Series:
    key = (file_idx, tf)
    s = _SERIES.get(key)
    if s is None:
        raw = _SERIES.get((file_idx, None))
        if raw is None:
            raw = _SERIES[(file_idx, None)] = load_candles(spec.paths[file_idx])
        s = raw if tf is None or timeframe_ms(tf) == raw.interval_ms else resample(raw, timeframe_ms(tf))
        _SERIES[key] = s
    return s


def run_span(spec: EvalSpec, file_idx: int, params: dict, start_ms: int, end_ms: int, curves: bool) -> dict:
    """One backtest of `params` on the candles opening in [start_ms, end_ms) of file `file_idx`."""
    tf = params.get("timeframe", spec.timeframe)
    series = _series(spec, file_idx, tf)
    tech = TechnicalParams.from_mapping({k: v for k, v in params.items() if k in ev.TECH_KEYS},
                                        replace(spec.technical, fee_rate=float(spec.fee)))
    risk = {k: Decimal(v) for k, v in params.items() if k in ev.RISK_KEYS}
    settings = replace(spec.settings, **risk) if risk else spec.settings
    out = {"return_pct": 0.0, "max_drawdown_pct": 0.0, "trades": 0, "fees": "0", "candles": 0,
           "timeframe": timeframe_name(series.interval_ms)}
    try:
        sub, start = window(series, start_ms, end_ms, WARMUP)
    except DataError:
        return out  # no candle in the span (a gap): nothing traded
    symbol = symbol_of(spec.paths[file_idx])
    base, _, quote = symbol.partition("/")
    step, min_amount, min_cost = spec.rules
    rules = MarketRules(symbol, base, quote, step, None, min_amount, min_cost, spec.fee)
    settings = replace(settings, amount_step=step, min_amount=min_amount, min_cost=min_cost, fee_rate=spec.fee)
    cfg = BacktestConfig(symbol, out["timeframe"], rules, settings, spec.balance, **dict(spec.run_options))
    res = run_backtest(sub, TechnicalDecider(tech), cfg, start)
    bal = float(spec.balance)
    out.update(return_pct=round((float(res.final_equity) / bal - 1.0) * 100.0, 6),
               max_drawdown_pct=round(max_drawdown_pct(bal, res.equity), 6),
               trades=len(res.trades),  # positions opened (one still open at the end counts)
               fees=format(res.book.fees_paid.normalize(), "f"), candles=len(sub))
    if curves:
        n = len(sub)
        out.update(equity=res.equity, closes=sub.close[start:], ts=sub.ts[start:n],
                   first_open=sub.open[start] if start < n else 1.0, start_equity=bal,
                   interval_ms=sub.interval_ms)
    return out


def _task(task: tuple) -> dict:
    file_idx, param_idx, start_ms, end_ms, curves = task
    return run_span(_SPEC, file_idx, _SPEC.grid[param_idx], start_ms, end_ms, curves)


def _map(spec: EvalSpec, tasks: list[tuple], pool: ProcessPoolExecutor | None, jobs: int,
         progress: Callable[[int], None] | None) -> list[dict]:
    out = []
    if pool is None:
        _init(spec)
        for t in tasks:
            out.append(_task(t))
            if progress:
                progress(1)
        return out
    for r in pool.map(_task, tasks, chunksize=max(1, min(16, len(tasks) // (jobs * 8) or 1))):
        out.append(r)
        if progress:
            progress(1)
    return out


# ---------------------------------------------------------------- driver

def plan(spec: EvalSpec) -> list[list[ev.Window]]:
    """The windows of each file (from its first open to the end of its last candle). Starts a run: the files
    are read afresh (they may have changed since an earlier run in this process)."""
    _SERIES.clear()
    _init(spec)
    out = []
    for i in range(len(spec.paths)):
        s = _series(spec, i, None)  # kept for a run in this process (--jobs 1)
        out.append(ev.make_windows(s.ts[0], s.ts[-1] + s.interval_ms, spec.train_ms, spec.test_ms))
    return out


def evaluate(spec: EvalSpec, jobs: int | None = None, progress: Callable[[int], None] | None = None,
             windows: list[list[ev.Window]] | None = None) -> dict:
    """Run the whole walk-forward; returns the report (plain dict, JSON-ready apart from the curves)."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    windows = plan(spec) if windows is None else windows
    t0 = time.perf_counter()
    train_tasks = [(f, p, w.train_start, w.train_end, False)
                   for f, ws in enumerate(windows) for w in ws for p in range(len(spec.grid))]
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init, initargs=(spec,)) if jobs > 1 else None
    try:
        train = _map(spec, train_tasks, pool, jobs, progress)
        chosen = _choices(spec, windows, train)
        test_tasks = [(f, chosen[f][i], w.test_start, w.test_end, True)
                      for f, ws in enumerate(windows) for i, w in enumerate(ws)]
        tests = _map(spec, test_tasks, pool, jobs, progress)
    finally:
        if pool is not None:
            pool.shutdown()
    seconds = time.perf_counter() - t0
    candles = sum(r["candles"] for r in train) + sum(r["candles"] for r in tests)
    return _report(spec, windows, train, chosen, tests, candles, seconds, jobs)


def _choices(spec: EvalSpec, windows: list[list[ev.Window]], train: list[dict]) -> list[list[int]]:
    """The chosen parameter set (grid index) per file and window, from the training runs only."""
    g = len(spec.grid)
    chosen, k = [], 0
    for ws in windows:
        picks = []
        for _w in ws:
            picks.append(ev.choose(train[k:k + g], spec.min_trades))
            k += g
        chosen.append(picks)
    return chosen


def _report(spec, windows, train, chosen, tests, candles, seconds, jobs) -> dict:
    g = len(spec.grid)
    files, tally = [], {}
    k = t = 0
    for f, ws in enumerate(windows):
        rows, file_tests = [], []
        for i, w in enumerate(ws):
            pick = chosen[f][i]
            tr, te = train[k + pick], tests[t]
            k += g
            t += 1
            bh = (te["closes"][-1] / te["first_open"] - 1.0) * 100.0 if te.get("closes") else 0.0
            rows.append({
                "window": i + 1, "train": [w.train_start, w.train_end], "test": [w.test_start, w.test_end],
                "params": spec.grid[pick], "params_index": pick,
                "train_return_pct": tr["return_pct"], "train_max_drawdown_pct": tr["max_drawdown_pct"],
                "train_trades": tr["trades"], "train_score": round(ev.score(tr["return_pct"], tr["max_drawdown_pct"]), 6),
                "return_pct": te["return_pct"], "max_drawdown_pct": te["max_drawdown_pct"], "trades": te["trades"],
                "fees": te["fees"], "buy_and_hold_return_pct": round(bh, 4), "timeframe": te["timeframe"],
            })
            desc = ev.describe(spec.grid[pick])
            tally[desc] = tally.get(desc, 0) + 1
            if te.get("closes"):
                file_tests.append(te)
        chained = ev.chain(file_tests)
        files.append({"file": os.path.basename(spec.paths[f]), "symbol": symbol_of(spec.paths[f]),
                      "windows": rows, "chosen_changed": ev.changes(chosen[f]),
                      "out_of_sample": {k2: v for k2, v in chained.items() if k2 not in ("equity", "buy_and_hold")},
                      "_curves": (file_tests, chained["equity"], chained["buy_and_hold"])})
    with_windows = [x for x in files if x["windows"]]
    n = len(with_windows) or 1
    summary = {
        "files": len(files), "windows": sum(len(x["windows"]) for x in files),
        "mean_out_of_sample_return_pct": round(sum(x["out_of_sample"]["return_pct"] for x in with_windows) / n, 4),
        "mean_buy_and_hold_return_pct": round(
            sum(x["out_of_sample"]["buy_and_hold_return_pct"] for x in with_windows) / n, 4),
        "beat_buy_and_hold": sum(1 for x in with_windows
                                 if x["out_of_sample"]["return_pct"] > x["out_of_sample"]["buy_and_hold_return_pct"]),
        "positive": sum(1 for x in with_windows if x["out_of_sample"]["return_pct"] > 0),
        "chosen_most_often": sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])),
    }
    return {
        "objective": ev.OBJECTIVE, "min_trades": spec.min_trades, "grid_size": len(spec.grid),
        "train_days": spec.train_ms / ev.DAY_MS, "test_days": spec.test_ms / ev.DAY_MS,
        "fee_rate": float(spec.fee), "results": files, "summary": summary,
        "speed": {"jobs": jobs, "backtests": len(train) + len(tests), "candles": candles,
                  "seconds": round(seconds, 3), "candles_per_second": round(candles / seconds) if seconds else None},
    }
