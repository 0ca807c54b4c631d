"""Incremental technical indicators, one class each (EMA, MACD, RSI, ATR, Bollinger): every update is O(1)
per candle, in floats.

Conventions (the tests pin them against a non-incremental reference):
- EMA(n): seeded with the simple mean of the first n values, then
  ema += 2/(n+1) * (x - ema).
- MACD(12, 26, 9): macd = EMA12 - EMA26 (from candle 26 on); signal = EMA9 of
  macd, seeded the same way (from candle 34); hist = macd - signal.
  The set is `ready` from candle 35, when the previous histogram exists too.
- RSI(14) and ATR(14): Wilder smoothing, seeded with the mean of the first 14
  changes / true ranges. The first true range is high - low.
- Bollinger(20, 2): mean +- 2 population standard deviations of the last 20
  closes, from a rolling sum and sum of squares.

Values are None until an indicator has seen enough candles.
"""

from __future__ import annotations

import math


class EMA:
    __slots__ = ("period", "alpha", "value", "_n", "_sum")

    def __init__(self, period: int):
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.value: float | None = None
        self._n = 0
        self._sum = 0.0

    def update(self, x: float) -> float | None:
        v = self.value
        if v is not None:
            v += self.alpha * (x - v)
            self.value = v
            return v
        self._n += 1
        self._sum += x
        if self._n == self.period:
            self.value = self._sum / self.period
        return self.value


class MACD:
    __slots__ = ("fast", "slow", "signal_ema", "macd", "signal", "hist", "prev_hist")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9):
        self.fast = EMA(fast)
        self.slow = EMA(slow)
        self.signal_ema = EMA(signal)
        self.macd: float | None = None
        self.signal: float | None = None
        self.hist: float | None = None
        self.prev_hist: float | None = None

    def update(self, close: float) -> float | None:
        f = self.fast.update(close)
        s = self.slow.update(close)
        if s is None:
            return None
        m = f - s
        self.macd = m
        sig = self.signal_ema.update(m)
        if sig is not None:
            self.signal = sig
            self.prev_hist = self.hist
            self.hist = m - sig
        return self.hist


class RSI:
    """Wilder's RSI."""

    __slots__ = ("period", "value", "_prev", "_n", "_gain", "_loss")

    def __init__(self, period: int = 14):
        self.period = period
        self.value: float | None = None
        self._prev: float | None = None
        self._n = 0
        self._gain = 0.0  # running sum during warm-up, then Wilder average
        self._loss = 0.0

    def update(self, close: float) -> float | None:
        prev = self._prev
        self._prev = close
        if prev is None:
            return None
        d = close - prev
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        p = self.period
        if self._n < p:
            self._n += 1
            self._gain += g
            self._loss += lo
            if self._n < p:
                return None
            self._gain /= p
            self._loss /= p
        else:
            self._gain = (self._gain * (p - 1) + g) / p
            self._loss = (self._loss * (p - 1) + lo) / p
        self.value = _rsi(self._gain, self._loss)
        return self.value


def _rsi(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class ATR:
    """Wilder's average true range."""

    __slots__ = ("period", "value", "_prev", "_n", "_sum")

    def __init__(self, period: int = 14):
        self.period = period
        self.value: float | None = None
        self._prev: float | None = None
        self._n = 0
        self._sum = 0.0

    def update(self, high: float, low: float, close: float) -> float | None:
        pc = self._prev
        self._prev = close
        tr = high - low
        if pc is not None:
            a = high - pc if high > pc else pc - high
            b = low - pc if low > pc else pc - low
            if a > tr:
                tr = a
            if b > tr:
                tr = b
        v = self.value
        if v is not None:
            v = (v * (self.period - 1) + tr) / self.period
            self.value = v
            return v
        self._n += 1
        self._sum += tr
        if self._n == self.period:
            self.value = self._sum / self.period
        return self.value


class Bollinger:
    """Rolling mean +- k sigma. Sums are kept relative to an anchor near the
    mean (no catastrophic cancellation on large prices) and rebuilt exactly
    from the window once per `period` updates (no drift): still O(1) amortized."""

    __slots__ = ("period", "k", "upper", "mid", "lower", "_buf", "_i", "_n", "_anchor", "_s", "_ss")

    def __init__(self, period: int = 20, k: float = 2.0):
        self.period = period
        self.k = k
        self.upper: float | None = None
        self.mid: float | None = None
        self.lower: float | None = None
        self._buf = [0.0] * period
        self._i = 0
        self._n = 0
        self._anchor: float | None = None
        self._s = 0.0
        self._ss = 0.0

    def update(self, close: float) -> float | None:
        p = self.period
        if self._anchor is None:
            self._anchor = close
        i = self._i
        old = self._buf[i]
        self._buf[i] = close
        i += 1
        if i == p:
            i = 0
        self._i = i
        a = self._anchor
        x = close - a
        if self._n < p:
            self._n += 1
            self._s += x
            self._ss += x * x
            if self._n < p:
                return None
        elif i == 0:
            a = self._rebuild()
        else:
            y = old - a
            self._s += x - y
            self._ss += x * x - y * y
        mean = self._s / p
        var = self._ss / p - mean * mean
        sd = math.sqrt(var) if var > 0.0 else 0.0
        mid = a + mean
        self.mid = mid
        self.upper = mid + self.k * sd
        self.lower = mid - self.k * sd
        return mid

    def _rebuild(self) -> float:
        buf = self._buf
        a = sum(buf) / self.period  # re-anchor on the current mean
        self._anchor = a
        s = ss = 0.0
        for v in buf:
            d = v - a
            s += d
            ss += d * d
        self._s = s
        self._ss = ss
        return a
