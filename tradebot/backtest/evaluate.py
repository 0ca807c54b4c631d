"""Walk-forward evaluation, the pure parts: spans, rolling windows, the parameter grid, the objective, the
choice per window and the chained out-of-sample figures. Running the backtests is evaluate_run.py's.

A window is a training span immediately followed by a test span. Test spans follow each other without
overlap; each training span ends where its test span starts, so the choice for a test span is made only
from candles that closed before it (the indicators of a test run are warmed up on earlier candles too,
never later ones).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, fields
from decimal import Decimal

from ..engine.core import PairSettings
from ..strategy.technical import TechnicalParams
from .data import timeframe_ms
from .report import max_drawdown_pct

DAY_MS = 86_400_000
_SPAN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_SPAN_UNITS = {"m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}

# Searchable keys: the technical decider's parameters (fee_rate is the run's --fee, not a search key), the
# pair's risk settings (a trailing stop too once PairSettings has one) and the candle timeframe.
TECH_KEYS = tuple(k for k in TechnicalParams.names() if k != "fee_rate")
_RISK_CANDIDATES = ("stop_loss_percent", "take_profit_percent", "max_position_percent", "trailing_stop_percent")
RISK_KEYS = tuple(k for k in _RISK_CANDIDATES if k in {f.name for f in fields(PairSettings)})
GRID_KEYS = TECH_KEYS + RISK_KEYS + ("timeframe",)
# 0 switches a stop off (as in `tradebot backtest --set`)
_RISK_RANGES = {"stop_loss_percent": (Decimal(0), Decimal(50)), "take_profit_percent": (Decimal(0), Decimal(500)),
                "max_position_percent": (Decimal(1), Decimal(100)), "trailing_stop_percent": (Decimal(0), Decimal(50))}


def parse_span(text: str) -> int:
    """'60d', '12h', '2w', '90m' -> milliseconds; ValueError with one line otherwise."""
    m = _SPAN.match(text or "")
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r}: use a positive whole number and a unit m, h, d or w, e.g. 60d")
    return int(m.group(1)) * _SPAN_UNITS[m.group(2)]


@dataclass(frozen=True)
class Window:
    index: int
    train_start: int  # ms, inclusive
    train_end: int  # ms, exclusive; == test_start
    test_start: int
    test_end: int  # ms, exclusive


def make_windows(first_ms: int, end_ms: int, train_ms: int, test_ms: int) -> list[Window]:
    """Rolling windows over [first_ms, end_ms): test spans back to back from first_ms + train_ms, each
    preceded by a training span of train_ms. Only whole test spans are used."""
    if train_ms <= 0 or test_ms <= 0:
        raise ValueError("train and test spans must be positive")
    out = []
    test_start = first_ms + train_ms
    while test_start + test_ms <= end_ms:
        out.append(Window(len(out), test_start - train_ms, test_start, test_start, test_start + test_ms))
        test_start += test_ms
    return out


def parse_grid(items: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """['ema_fast=8,12', 'timeframe=1h,4h'] -> {'ema_fast': ['8', '12'], 'timeframe': ['1h', '4h']}, keys in
    the order given, values deduplicated in order and checked; ValueError with one line on a bad item."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in GRID_KEYS:
            raise ValueError(f"{item!r}: use key=v1,v2,... with key one of: {', '.join(GRID_KEYS)}")
        if key in grid:
            raise ValueError(f"{key}: given twice (list every value in one --grid {key}=v1,v2,...)")
        vals = list(dict.fromkeys(v.strip() for v in values.split(",") if v.strip()))
        if not vals:
            raise ValueError(f"{item!r}: no values")
        for v in vals:
            check_value(key, v)
        grid[key] = vals
    return grid


def check_value(key: str, value: str) -> None:
    if not value.isascii():
        raise ValueError(f"{key}={value!r}: not a number")
    if key == "timeframe":
        timeframe_ms(value)  # raises ValueError naming the accepted forms
    elif key in RISK_KEYS:
        try:
            d = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"{key}={value!r}: not a number") from None
        lo, hi = _RISK_RANGES[key]
        if not d.is_finite() or not lo <= d <= hi:
            raise ValueError(f"{key}={value!r}: must be between {lo} and {hi}")
    else:  # alone: the fast/slow order is checked per combination (expand_grid)
        TechnicalParams.from_mapping({"ema_fast": 2, "ema_slow": 500, key: value})


def expand_grid(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination, in a fixed order (first key varies slowest). Combinations the technical decider
    refuses (e.g. ema_fast >= ema_slow) are dropped; ValueError when none is left."""
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        try:
            TechnicalParams.from_mapping({k: v for k, v in params.items() if k in TECH_KEYS})
        except ValueError:
            continue
        out.append(params)
    if not out:
        raise ValueError("no valid combination in the grid (is every ema_fast below every ema_slow?)")
    return out


def describe(params: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"


# ---------------------------------------------------------------- objective and choice

OBJECTIVE = ("return / max drawdown (drawdown floored at 1 %) when the return is positive, else the return "
             "itself (a smaller loss ranks higher); parameter sets with fewer than --min-trades trades (positions opened) "
             "rank below every set that has enough; ties go to the earlier set in grid order")


def score(return_pct: float, drawdown_pct: float) -> float:
    if return_pct > 0.0:
        return return_pct / max(drawdown_pct, 1.0)
    return return_pct


def choose(train: list[dict], min_trades: int) -> int:
    """Index of the best training result (dicts with return_pct, max_drawdown_pct, trades); deterministic."""
    def key(i: int):
        r = train[i]
        return (r["trades"] >= min_trades, score(r["return_pct"], r["max_drawdown_pct"]), -i)

    return max(range(len(train)), key=key)


def changes(choices: list[int]) -> int:
    """How many times the chosen parameter set differs from the previous window's."""
    return sum(1 for a, b in zip(choices, choices[1:], strict=False) if a != b)


def chain(tests: list[dict]) -> dict:
    """Chained out-of-sample figures: each test span starts with the equity the previous one ended with
    (returns compound); drawdowns over the chained curves; buy-and-hold chained the same way."""
    eq, bh = [1.0], [1.0]
    trades, fees = 0, Decimal(0)
    for t in tests:
        base, start = eq[-1], t["start_equity"]
        eq.extend(base * e / start for e in t["equity"])
        b0 = bh[-1]
        first = t["first_open"]
        bh.extend(b0 * c / first for c in t["closes"])
        trades += t["trades"]
        fees += Decimal(t["fees"]) / Decimal(repr(start))  # fees as a fraction of the window's start equity
    return {
        "return_pct": round((eq[-1] - 1.0) * 100.0, 4),
        "max_drawdown_pct": round(max_drawdown_pct(1.0, eq[1:]), 4),
        "trades": trades,
        "fees_pct_of_equity": round(float(fees) * 100.0, 4),
        "buy_and_hold_return_pct": round((bh[-1] - 1.0) * 100.0, 4),
        "buy_and_hold_max_drawdown_pct": round(max_drawdown_pct(1.0, bh[1:]), 4),
        "equity": eq,
        "buy_and_hold": bh,
    }
