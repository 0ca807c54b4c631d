"""Candle files for the backtester: loading, validation, resampling, date windows.

Accepted layouts (plain, .gz or a .zip holding one CSV, with or without a header row; columns by position):
- Binance kline CSV, 12 columns: open_time, open, high, low, close, volume, close_time, ... ;
- simple OHLCV CSV, 6 columns: timestamp, open, high, low, close, volume.
The time column may be ms, s or µs since the epoch, or a UTC datetime string
('YYYY-MM-DD HH:MM:SS' or ISO 8601). Any problem is one `DataError` naming the line.

Series are kept as parallel lists of plain ints/floats: the replay loop
indexes them directly, with no per-candle object allocation.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..strategy.base import Candle

EPOCH = dt.datetime(1970, 1, 1)
MIN_TIME_MS, MAX_TIME_MS = 0, (dt.datetime(3000, 1, 1) - EPOCH) // dt.timedelta(milliseconds=1)
MS = dt.timedelta(milliseconds=1)
MINUTE_MS = 60_000
_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
# Binance weeks start on Monday; the epoch was a Thursday.
_WEEK_OFFSET_MS = 4 * 86_400_000


class DataError(ValueError):
    """A candle file cannot be used; the message names the file and line."""


def timeframe_ms(tf: str) -> int:
    m = re.fullmatch(r"([0-9]{1,9})([mhdw])", tf.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad timeframe {tf!r} (use e.g. 1m, 5m, 1h, 4h, 1d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def timeframe_name(ms: int) -> str:
    for unit, size in (("w", _UNITS["w"]), ("d", _UNITS["d"]), ("h", _UNITS["h"]), ("m", _UNITS["m"])):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(slots=True)
class Series:
    """Closed candles of one symbol, oldest first, as parallel columns."""

    ts: list[int]  # open time, ms UTC
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    interval_ms: int
    source: str = ""
    lines: list[int] | None = None  # source line of each row (for messages)

    def __len__(self) -> int:
        return len(self.ts)

    def candle(self, i: int) -> Candle:
        return Candle(self.ts[i], self.open[i], self.high[i], self.low[i], self.close[i], self.volume[i])

    def slice(self, start: int, stop: int) -> Series:
        return Series(self.ts[start:stop], self.open[start:stop], self.high[start:stop], self.low[start:stop],
                      self.close[start:stop], self.volume[start:stop], self.interval_ms, self.source)


def parse_time(text: str) -> int:
    """ms since the epoch from a number (s, ms or µs) or a UTC datetime string."""
    t = text.strip()
    if t.isascii() and t.isdigit():  # ASCII only: '²' is a digit to isdigit() but not to int()
        if len(t) > 30:
            raise ValueError(f"bad time {text[:40]!r} (too many digits)")
        v = int(t)
        if v >= 10**15:  # µs (Binance spot files since 2025)
            return v // 1000
        if v < 10**11:  # seconds
            return v * 1000
        return v
    if not t.isascii():
        raise ValueError(f"bad time {text[:40]!r}")
    try:
        d = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        if d.tzinfo is not None:
            # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00 fall outside what datetime can hold in UTC
            d = d.astimezone(dt.timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise ValueError(f"bad time {text[:40]!r} (use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or ISO 8601 in years "
                         "1-9999)") from None
    return (d - EPOCH) // MS


def parse_date(text: str, end: bool = False) -> int:
    """--from / --to: a UTC date or datetime. A bare date as `end` means the end of that day."""
    ms = parse_time(text)
    if end and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        ms += _UNITS["d"]
    return ms


MAX_LINE_CHARS = 4096  # a candle row is ~150 characters; anything longer is not a candle file
MAX_ROWS = 5_000_000  # ~9.5 years of 1m candles; keeps a backtest's memory around 1 GB at most


def _open_stream(path: Path):
    """A binary stream of the CSV bytes: a .zip member or .gz content is decompressed as it is read,
    never whole in memory (a 3 MB gzip can expand to gigabytes)."""
    fh = open(path, "rb")
    try:
        if fh.read(4) == b"PK\x03\x04":  # a .zip as data.binance.vision serves it: one CSV inside
            fh.seek(0)
            try:
                zf = zipfile.ZipFile(fh)
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise DataError(f"{path}: a zip file must hold exactly one CSV file (it holds {len(members)})")
                stream = zf.open(members[0])
            except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
                    RuntimeError) as e:
                raise DataError(f"{path}: not a readable zip file ({e})") from None
        else:
            fh.seek(0)
            stream = fh
        buffered = io.BufferedReader(stream) if not isinstance(stream, io.BufferedReader) else stream
        try:
            magic = buffered.peek(2)[:2]
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise DataError(f"{path}: not a readable zip file ({e})") from None
        if magic == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=buffered)
        return buffered
    except BaseException:
        fh.close()
        raise


def _lines(path: Path, stream):
    """Decoded lines, each at most MAX_LINE_CHARS; decompression and decoding errors become DataError."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    n = 0
    try:
        while True:
            line = text.readline(MAX_LINE_CHARS + 1)
            if not line:
                return
            n += 1
            if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                raise DataError(f"{path}:{n}: malformed row (longer than {MAX_LINE_CHARS} characters)")
            yield line
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:  # truncated or corrupted inside
        kind = "gzip" if isinstance(stream, gzip.GzipFile) else "zip" if isinstance(e, zipfile.BadZipFile) else "file"
        raise DataError(f"{path}: not a readable {kind} file ({e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{n + 1}: not a text CSV file (byte {e.start} is not UTF-8)") from None
    finally:
        text.close()


def load_candles(path: str | Path) -> Series:
    """Read and validate a candle file; see the module docstring for the layouts."""
    path = Path(path)
    try:
        text = _lines(path, _open_stream(path))
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None
    ts: list[int] = []
    o: list[float] = []
    h: list[float] = []
    lo: list[float] = []
    c: list[float] = []
    v: list[float] = []
    lines: list[int] = []
    prev = None
    reader = csv.reader(text, strict=True)
    n = 0
    header_seen = False
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. an unterminated quote or a huge field: name the row's first line
            raise DataError(f"{path}:{n + 1}: malformed row ({e})") from None
        n = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if not ts and not header_seen and not _looks_like_data(row):
            header_seen = True
            continue  # header row (the first non-blank row)
        if len(row) < 6:
            raise DataError(f"{path}:{n}: expected at least 6 columns (time, open, high, low, close, volume), "
                            f"got {len(row)}: {','.join(row)[:80]!r}")
        try:
            t = parse_time(row[0])
            op, hi, low, cl, vol = float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5])
        except ValueError as e:
            raise DataError(f"{path}:{n}: malformed row ({e}): {','.join(row)[:80]!r}") from None
        if not MIN_TIME_MS <= t < MAX_TIME_MS:
            raise DataError(f"{path}:{n}: time {row[0].strip()!r} is out of range (1970 to 2999 UTC)")
        if not (0 < low <= min(op, cl) and max(op, cl) <= hi < math.inf) or not 0 <= vol < math.inf:
            raise DataError(f"{path}:{n}: inconsistent candle (need 0 < low <= open, close <= high, finite "
                            f"prices and volume >= 0): {','.join(row[:6])!r}")
        if prev is not None and t <= prev:
            raise DataError(f"{path}:{n}: time {row[0]} is not after the previous row's (rows must be in "
                            f"ascending time order without duplicates)")
        prev = t
        if len(ts) >= MAX_ROWS:
            raise DataError(f"{path}:{n}: more than {MAX_ROWS} candles; split the file or use a coarser timeframe")
        ts.append(t)
        o.append(op)
        h.append(hi)
        lo.append(low)
        c.append(cl)
        v.append(vol)
        lines.append(n)
    if not ts:
        raise DataError(f"{path}: no candles found")
    return Series(ts, o, h, lo, c, v, _infer_interval(ts), str(path), lines)


def _looks_like_data(row: list[str]) -> bool:
    try:
        parse_time(row[0])
        float(row[1])
        return True
    except (ValueError, IndexError):
        return False


def _infer_interval(ts: list[int]) -> int:
    """The file's bar interval: the smallest step between rows (gaps only make steps larger)."""
    if len(ts) < 2:
        return MINUTE_MS
    return min(b - a for a, b in zip(ts, ts[1:], strict=False))


def resample(s: Series, target_ms: int) -> Series:
    """Aggregate to a coarser timeframe, buckets aligned like Binance's (UTC; weeks start Monday).
    An incomplete first or last bucket (the file starts or ends inside it) is dropped: it is not a
    closed candle of the target timeframe. Interior buckets with missing source bars are kept, as an
    exchange would build them from the trades it has."""
    if target_ms == s.interval_ms:
        return s
    if target_ms < s.interval_ms or target_ms % s.interval_ms:
        raise DataError(f"{s.source}: cannot turn {timeframe_name(s.interval_ms)} candles into "
                        f"{timeframe_name(target_ms)} (need a whole multiple of the file's timeframe)")
    off = _WEEK_OFFSET_MS if target_ms % _UNITS["w"] == 0 else 0
    per = target_ms // s.interval_ms
    out = Series([], [], [], [], [], [], target_ms, s.source)
    counts = []
    ts, op, hi, lo, cl, vol = s.ts, s.open, s.high, s.low, s.close, s.volume
    cur = None
    for i in range(len(ts)):
        b = (ts[i] - off) // target_ms * target_ms + off
        if b != cur:
            cur = b
            out.ts.append(b)
            out.open.append(op[i])
            out.high.append(hi[i])
            out.low.append(lo[i])
            out.close.append(cl[i])
            out.volume.append(vol[i])
            counts.append(1)
        else:
            if hi[i] > out.high[-1]:
                out.high[-1] = hi[i]
            if lo[i] < out.low[-1]:
                out.low[-1] = lo[i]
            out.close[-1] = cl[i]
            out.volume[-1] += vol[i]
            counts[-1] += 1
    start, stop = 0, len(out)
    if stop and (s.ts[0] != out.ts[0]):
        start = 1  # file starts inside the first bucket
    if stop > start and (s.ts[-1] + s.interval_ms != out.ts[-1] + target_ms) and counts[-1] < per:
        stop -= 1  # the last bucket is not closed yet
    return out.slice(start, stop) if (start, stop) != (0, len(out)) else out


def window(s: Series, start_ms: int | None, end_ms: int | None, warmup: int = 0) -> tuple[Series, int]:
    """Candles whose open time is in [start_ms, end_ms), plus up to `warmup` candles before start_ms
    for the indicators. Returns (series, index of the first traded candle)."""
    import bisect

    lo = bisect.bisect_left(s.ts, start_ms) if start_ms is not None else 0
    hi = bisect.bisect_left(s.ts, end_ms) if end_ms is not None else len(s)
    if hi <= lo:
        raise DataError(f"{s.source}: no candles between the given --from and --to dates")
    first = max(0, lo - warmup)
    if (first, hi) == (0, len(s)):
        return s, lo
    return s.slice(first, hi), lo - first
