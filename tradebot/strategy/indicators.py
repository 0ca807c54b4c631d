"""The indicator set of one candle stream (IndicatorSet, its immutable IndicatorSnapshot, `compute`) and the
per-stream IndicatorCache the engine keeps between cycles. The formulas are in incremental.py."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from .base import Candle
from .incremental import ATR, MACD, RSI, Bollinger

# (ema fast, ema slow, macd signal, rsi, bollinger, bollinger k, atr): the shared stream's periods
DEFAULT_PERIODS = (12, 26, 9, 14, 20, 2.0, 14)


class IndicatorSnapshot(NamedTuple):
    """Immutable indicator values after the candle `ts` closed."""

    ts: int
    close: float
    ema_fast: float | None
    ema_slow: float | None
    macd: float | None
    macd_signal: float | None
    macd_hist: float | None
    prev_macd_hist: float | None  # hist one candle earlier (rising / falling)
    rsi: float | None
    bb_upper: float | None
    bb_mid: float | None
    bb_lower: float | None
    atr: float | None
    ready: bool  # every value above is set
    periods: tuple = DEFAULT_PERIODS  # what it was computed with (a decider with other periods recomputes)

    def describe(self) -> str:
        if not self.ready:
            return "indicators warming up"
        return (
            f"close={self.close:.8g} EMA12={self.ema_fast:.8g} EMA26={self.ema_slow:.8g} "
            f"MACD={self.macd:.6g} signal={self.macd_signal:.6g} hist={self.macd_hist:.6g} "
            f"RSI={self.rsi:.2f} BB=[{self.bb_lower:.8g}, {self.bb_mid:.8g}, {self.bb_upper:.8g}] "
            f"ATR={self.atr:.6g}"
        )


class IndicatorSet:
    """All indicators of one candle stream, updated together.

    `update` is the backtester's hot path, so it is one inlined function over plain
    attributes (same formulas as the classes in incremental.py; the tests check both against a
    reference). Until every indicator is warm it runs the component classes; then it
    takes over their state. The public attributes mirror IndicatorSnapshot, so a
    decider reads either (the live set in a backtest, an immutable snapshot live)."""

    __slots__ = (
        "ts", "close", "count", "ready",
        "ema_fast", "ema_slow", "macd", "macd_signal", "macd_hist", "prev_macd_hist",
        "rsi", "bb_upper", "bb_mid", "bb_lower", "atr",
        "_parts", "_af", "_as", "_asig", "_bbk", "_p_rsi", "_p_bb", "_p_atr",
        "_prev_close", "_gain", "_loss", "_buf", "_bi", "_anchor", "_s", "_ss", "periods",
    )

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9, rsi: int = 14,
                 bb: int = 20, bb_k: float = 2.0, atr: int = 14):
        self._parts = (MACD(fast, slow, signal), RSI(rsi), Bollinger(bb, bb_k), ATR(atr))
        self.periods = (fast, slow, signal, rsi, bb, float(bb_k), atr)
        self._af, self._as, self._asig = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
        self._bbk, self._p_rsi, self._p_bb, self._p_atr = bb_k, rsi, bb, atr
        self.ts, self.close, self.count, self.ready = 0, 0.0, 0, False
        self.ema_fast = self.ema_slow = self.macd = self.macd_signal = None
        self.macd_hist = self.prev_macd_hist = self.rsi = None
        self.bb_upper = self.bb_mid = self.bb_lower = self.atr = None

    def update(self, ts: int, high: float, low: float, close: float) -> bool:
        self.ts = ts
        self.count += 1
        if not self.ready:
            return self._warm_update(high, low, close)
        pc = self._prev_close
        self._prev_close = close
        self.close = close
        # MACD
        f = self.ema_fast + self._af * (close - self.ema_fast)
        sl = self.ema_slow + self._as * (close - self.ema_slow)
        m = f - sl
        sig = self.macd_signal + self._asig * (m - self.macd_signal)
        self.ema_fast, self.ema_slow, self.macd, self.macd_signal = f, sl, m, sig
        self.prev_macd_hist = self.macd_hist
        self.macd_hist = m - sig
        # RSI (Wilder)
        d = close - pc
        p = self._p_rsi
        if d > 0.0:
            g = self._gain = (self._gain * (p - 1) + d) / p
            lo = self._loss = self._loss * (p - 1) / p
        else:
            g = self._gain = self._gain * (p - 1) / p
            lo = self._loss = (self._loss * (p - 1) - d) / p
        if lo == 0.0:
            self.rsi = 50.0 if g == 0.0 else 100.0
        else:
            self.rsi = 100.0 - 100.0 / (1.0 + g / lo)
        # ATR (Wilder)
        tr = high - low
        a = high - pc if high > pc else pc - high
        if a > tr:
            tr = a
        a = low - pc if low > pc else pc - low
        if a > tr:
            tr = a
        p = self._p_atr
        self.atr = (self.atr * (p - 1) + tr) / p
        # Bollinger: anchored rolling sums, rebuilt once per window (see Bollinger)
        buf = self._buf
        i = self._bi
        old = buf[i]
        buf[i] = close
        i += 1
        n = self._p_bb
        if i == n:
            i = 0
        self._bi = i
        if i == 0:
            anc = sum(buf) / n
            s = ss = 0.0
            for v in buf:
                x = v - anc
                s += x
                ss += x * x
            self._anchor = anc
        else:
            anc = self._anchor
            x = close - anc
            y = old - anc
            s = self._s + x - y
            ss = self._ss + x * x - y * y
        self._s, self._ss = s, ss
        mean = s / n
        var = ss / n - mean * mean
        sd = self._bbk * math.sqrt(var) if var > 0.0 else 0.0
        mid = self.bb_mid = anc + mean
        self.bb_upper = mid + sd
        self.bb_lower = mid - sd
        return True

    def _warm_update(self, high: float, low: float, close: float) -> bool:
        self.close = close
        macd, rsi, bb, atr = self._parts
        macd.update(close)
        rsi.update(close)
        bb.update(close)
        atr.update(high, low, close)
        self.ema_fast, self.ema_slow = macd.fast.value, macd.slow.value
        self.macd, self.macd_signal, self.macd_hist, self.prev_macd_hist = macd.macd, macd.signal, macd.hist, macd.prev_hist
        self.rsi, self.atr = rsi.value, atr.value
        self.bb_upper, self.bb_mid, self.bb_lower = bb.upper, bb.mid, bb.lower
        if macd.prev_hist is None or rsi.value is None or bb.mid is None or atr.value is None:
            return False
        # every indicator is warm (candle 35): take over the state for the inlined path
        self._prev_close = close
        self._gain, self._loss = rsi._gain, rsi._loss
        self._buf, self._bi, self._anchor, self._s, self._ss = bb._buf, bb._i, bb._anchor, bb._s, bb._ss
        self._parts = None
        self.ready = True
        return True

    def feed(self, candles: Sequence[Candle]) -> None:
        for c in candles:
            self.update(c[0], c[2], c[3], c[4])

    def snapshot(self) -> IndicatorSnapshot:
        return IndicatorSnapshot(
            self.ts, self.close, self.ema_fast, self.ema_slow, self.macd, self.macd_signal, self.macd_hist,
            self.prev_macd_hist, self.rsi, self.bb_upper, self.bb_mid, self.bb_lower, self.atr, self.ready,
            self.periods,
        )


def compute(candles: Sequence[Candle]) -> IndicatorSnapshot:
    """Indicators from scratch over `candles` (oldest first)."""
    s = IndicatorSet()
    s.feed(candles)
    return s.snapshot()


class _Stream:
    __slots__ = ("lock", "iset", "last_ts", "last_close", "snaps")

    def __init__(self):
        self.lock = threading.Lock()
        self.iset = IndicatorSet()
        self.last_ts: int | None = None
        self.last_close: float | None = None
        self.snaps: OrderedDict[int, IndicatorSnapshot] = OrderedDict()


class IndicatorCache:
    """Indicators computed once per (exchange, network, symbol, timeframe, candle
    ts) and shared by every pair that trades that stream.

    `get` is fed the closed candles the market-data layer returned; it feeds
    only the candles newer than the last one seen. If that last candle is not
    in the list any more (a gap: the bot was down longer than the window) or
    its close changed (the exchange revised it), the stream is rebuilt from
    the list. Bounded: at most `max_streams` streams (least recently used
    dropped) and `keep` snapshots per stream. Thread-safe: one lock for the
    map, one per stream, so different streams compute in parallel.
    """

    def __init__(self, max_streams: int = 4096, keep: int = 4):
        self.max_streams = max_streams
        self.keep = keep
        self._lock = threading.Lock()
        self._streams: OrderedDict[tuple, _Stream] = OrderedDict()
        self.computed = 0  # candles fed, for tests and stats
        self.rebuilds = 0

    def __len__(self) -> int:
        return len(self._streams)

    def _stream(self, key: tuple) -> _Stream:
        with self._lock:
            st = self._streams.get(key)
            if st is None:
                st = self._streams[key] = _Stream()
                while len(self._streams) > self.max_streams:
                    self._streams.popitem(last=False)
            else:
                self._streams.move_to_end(key)
            return st

    def get(self, exchange: str, network: str, symbol: str, timeframe: str,
            candles: Sequence[Candle]) -> IndicatorSnapshot | None:
        if not candles:
            return None
        newest = candles[-1]
        st = self._stream((exchange, network, symbol, timeframe))
        with st.lock:
            snap = st.snaps.get(newest.ts)
            if snap is not None:
                return snap  # already computed for this candle by another pair
            start = self._catch_up_index(st, candles)
            if start is None:  # gap, revision or stale request: rebuild from this list
                if st.last_ts is not None and newest.ts < st.last_ts:
                    return compute(candles)  # an older view; don't rewind the shared stream
                self.rebuilds += 1
                st.iset = IndicatorSet()
                st.snaps.clear()
                start = 0
            iset = st.iset
            for c in candles[start:]:
                iset.update(c.ts, c.high, c.low, c.close)
            self.computed += len(candles) - start
            st.last_ts = newest.ts
            st.last_close = newest.close
            snap = iset.snapshot()
            st.snaps[newest.ts] = snap
            while len(st.snaps) > self.keep:
                st.snaps.popitem(last=False)
            return snap

    @staticmethod
    def _catch_up_index(st: _Stream, candles: Sequence[Candle]) -> int | None:
        """Index of the first candle to feed, or None when a rebuild is needed."""
        last = st.last_ts
        if last is None:
            return None
        # Newest first: the last seen candle is normally near the end.
        for i in range(len(candles) - 1, -1, -1):
            ts = candles[i].ts
            if ts == last:
                return i + 1 if candles[i].close == st.last_close else None
            if ts < last:
                return None
        return None
