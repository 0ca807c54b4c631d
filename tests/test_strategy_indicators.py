"""Incremental indicators vs a straightforward full-series reference, on real data."""

import csv
import gzip
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from tradebot.strategy.base import Candle
from tradebot.strategy.indicators import IndicatorCache, IndicatorSet, compute

DATA = Path(__file__).resolve().parent / "data"
REL = 1e-9


def _load(name: str, limit: int | None = None) -> list[Candle]:
    with gzip.open(DATA / name, "rt", newline="") as f:
        rows = list(csv.reader(f))[1:]
    rows = rows[:limit] if limit else rows
    # ts is only an ordering key here: use the row index
    return [Candle(i, float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for i, r in enumerate(rows)]


# --- reference: whole-series formulas, no incremental state ---

def ref_ema(xs, n):
    out = [None] * len(xs)
    if len(xs) < n:
        return out
    out[n - 1] = sum(xs[:n]) / n
    a = 2 / (n + 1)
    for i in range(n, len(xs)):
        out[i] = a * xs[i] + (1 - a) * out[i - 1]
    return out


def ref_macd(closes):
    f, s = ref_ema(closes, 12), ref_ema(closes, 26)
    macd = [None if s[i] is None else f[i] - s[i] for i in range(len(closes))]
    sig_tail = ref_ema(macd[25:], 9)
    sig = [None] * 25 + sig_tail
    hist = [None if sig[i] is None else macd[i] - sig[i] for i in range(len(closes))]
    return f, s, macd, sig, hist


def ref_rsi(closes, n=14):
    out = [None] * len(closes)
    gains = [max(closes[i] - closes[i - 1], 0.0) for i in range(1, len(closes))]
    losses = [max(closes[i - 1] - closes[i], 0.0) for i in range(1, len(closes))]
    ag, al = sum(gains[:n]) / n, sum(losses[:n]) / n
    for i in range(n, len(closes)):
        if i > n:
            ag = (ag * (n - 1) + gains[i - 1]) / n
            al = (al * (n - 1) + losses[i - 1]) / n
        out[i] = (50.0 if ag == 0 else 100.0) if al == 0 else 100 - 100 / (1 + ag / al)
    return out


def ref_atr(candles, n=14):
    tr = [candles[0].high - candles[0].low] + [
        max(c.high - c.low, abs(c.high - p.close), abs(c.low - p.close)) for p, c in zip(candles, candles[1:], strict=False)
    ]
    out = [None] * len(candles)
    out[n - 1] = sum(tr[:n]) / n
    for i in range(n, len(candles)):
        out[i] = (out[i - 1] * (n - 1) + tr[i]) / n
    return out


def ref_bb(closes, n=20, k=2.0):
    win = np.lib.stride_tricks.sliding_window_view(np.array(closes), n)
    mid, sd = win.mean(axis=1), win.std(axis=1)
    pad = [None] * (n - 1)
    return pad + list(mid + k * sd), pad + list(mid), pad + list(mid - k * sd), pad + list(sd)


def _close(a, b, scale):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=REL * scale)


@pytest.mark.parametrize("name", [
    "binance-spot-BTCUSDT-1m-2023-01-01_2023-01-14.csv.gz",  # large prices: BB cancellation
    "binance-usdm-LTCUSDT-1m-2026-02-01_2026-02-14.csv.gz",  # many flat candles: zero sigma, zero losses
])
def test_indicator_set_matches_reference(name):
    candles = _load(name, 20000)
    closes = [c.close for c in candles]
    f, s, macd, sig, hist = ref_macd(closes)
    rsi, atr = ref_rsi(closes), ref_atr(candles)
    up, mid, lo, sd = ref_bb(closes)
    scale = max(closes)  # differences of prices (MACD, hist) are compared at the price scale
    iset = IndicatorSet()
    bad = []
    for i, c in enumerate(candles):
        iset.update(c.ts, c.high, c.low, c.close)
        snap = iset.snapshot()
        checks = [
            ("ema_fast", snap.ema_fast, f[i], scale), ("ema_slow", snap.ema_slow, s[i], scale),
            ("macd", snap.macd, macd[i], scale), ("signal", snap.macd_signal, sig[i], scale),
            ("hist", snap.macd_hist, hist[i], scale), ("rsi", snap.rsi, rsi[i], 0.0),
            ("atr", snap.atr, atr[i], 0.0), ("bb_mid", snap.bb_mid, mid[i], 0.0),
            ("bb_upper", snap.bb_upper, up[i], 0.0), ("bb_lower", snap.bb_lower, lo[i], 0.0),
        ]
        if sd[i] is not None:  # the band width itself, relative (abs only for a flat window)
            checks.append(("bb_sd", (snap.bb_upper - snap.bb_mid) / 2, sd[i], 1e-3 * closes[i]))
        bad += [(i, n, a, b) for n, a, b, sc in checks if not _close(a, b, sc)]
        assert snap.ready == (i >= 34)
        checks_prev = snap.prev_macd_hist, (hist[i - 1] if i >= 34 else None)
        assert _close(*checks_prev, scale)
    assert not bad, bad[:5]


def test_live_set_attributes_equal_snapshot():
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz")
    iset = IndicatorSet()
    iset.feed(candles)
    snap = iset.snapshot()
    for field in snap._fields:
        assert getattr(iset, field) == getattr(snap, field), field
    assert compute(candles) == snap
    assert "RSI=" in snap.describe()


def test_cache_shares_and_catches_up_incrementally():
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz")
    cache = IndicatorCache()
    key = ("binance", "live", "BTC/USDT", "1h")
    a = cache.get(*key, candles[0:200])
    b = cache.get(*key, candles[0:200])  # a second pair on the same candle
    assert a is b and cache.computed == 200
    c = cache.get(*key, candles[1:201])  # next cycle: one new candle
    assert cache.computed == 201 and cache.rebuilds == 1
    assert c == compute(candles[0:201])  # same as a full run from the first candle
    d = cache.get(*key, candles[3:203])  # missed two cycles: still incremental
    assert cache.computed == 203 and d == compute(candles[0:203])
    # other network: separate stream
    cache.get("binance", "testnet", "BTC/USDT", "1h", candles[0:200])
    assert len(cache) == 2


def test_cache_rebuilds_on_gap_and_revision():
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz")
    cache = IndicatorCache()
    key = ("bybit", "live", "BTC/USDT", "1h")
    cache.get(*key, candles[0:100])
    snap = cache.get(*key, candles[300:400])  # the last seen candle is gone: gap
    assert cache.rebuilds == 2 and snap == compute(candles[300:400])
    revised = list(candles[300:400])
    revised[-1] = revised[-1]._replace(close=revised[-1].close + 1)
    snap2 = cache.get(*key, revised + [candles[400]])
    assert cache.rebuilds == 3 and snap2 == compute(revised + [candles[400]])


def test_cache_is_bounded_and_thread_safe():
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz")
    cache = IndicatorCache(max_streams=2)
    for sym in ("A/USDT", "B/USDT", "C/USDT"):
        cache.get("binance", "live", sym, "1h", candles[:50])
    assert len(cache) == 2

    cache = IndicatorCache()
    results = []
    start = threading.Barrier(8)

    def worker():
        start.wait()
        results.append(cache.get("binance", "live", "BTC/USDT", "1h", candles))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.computed == len(candles)  # computed once, not 8 times
    assert all(r is results[0] for r in results)
