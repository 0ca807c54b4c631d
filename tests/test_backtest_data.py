"""Candle files: layouts, validation errors naming the line, resampling, date windows."""

import gzip
from pathlib import Path

import pytest

from tradebot.backtest.data import DataError, load_candles, parse_date, resample, timeframe_ms, window

KLINES = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name,rows,tf,first_ts,first_open", [
    ("binance-spot-BTCUSDT-1m-2023-01-21.csv.gz", 1440, "1m", 1674259200000, 22666.0),  # 12 cols, no header
    ("binance-usdm-AVAXUSDT-1m-2024-02-01.csv.gz", 1440, "1m", 1706745600000, 33.173),  # 12 cols + header
    ("binance-spot-BTCUSDT-1m-2023-01-01_2023-01-14.csv.gz", 20000, "1m", 1672531200000, 16541.77),  # 6 cols
    ("binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz", 3878, "1h", 1704067200000, 42283.58),  # 13-col header
    ("binance-spot-BTCUSDT-1d-2017-08-17_2023-01-31.csv.gz", 1994, "1d", 1502928000000, 4261.48),  # date strings
])
def test_real_layouts(name, rows, tf, first_ts, first_open):
    s = load_candles(KLINES / name)
    assert (len(s), s.interval_ms, s.ts[0], s.open[0]) == (rows, timeframe_ms(tf), first_ts, first_open)


def test_gappy_file_keeps_its_interval():
    s = load_candles(KLINES / "binance-spot-BTCUSDT-1h-2019-12-10_2020-03-11.csv.gz")
    assert len(s) == 2200 and s.interval_ms == timeframe_ms("1h")  # 3 gaps (7 hours missing) in 2,207 hours


def test_resampled_1m_day_equals_the_exchange_daily_candle():
    day = resample(load_candles(KLINES / "binance-spot-BTCUSDT-1m-2023-01-21.csv.gz"), timeframe_ms("1d"))
    daily = load_candles(KLINES / "binance-spot-BTCUSDT-1d-2017-08-17_2023-01-31.csv.gz")
    i = daily.ts.index(day.ts[0])
    assert len(day) == 1
    assert (day.open[0], day.high[0], day.low[0], day.close[0]) == (
        daily.open[i], daily.high[i], daily.low[i], daily.close[i])
    assert day.volume[0] == pytest.approx(daily.volume[i], rel=1e-9)


def test_resample_drops_unclosed_edges():
    s = load_candles(KLINES / "binance-spot-BTCUSDT-1m-2023-01-01_2023-01-14.csv.gz")  # ends at 21:19
    h = resample(s, timeframe_ms("1h"))
    assert len(h) == 333 and h.ts[-1] == s.ts[0] + 332 * 3_600_000  # the 21:00 hour is incomplete
    # the file starting mid-hour: the first partial hour is dropped too
    part = resample(s.slice(30, len(s)), timeframe_ms("1h"))
    assert part.ts[0] == s.ts[0] + 3_600_000
    four = resample(s, timeframe_ms("4h"))
    assert four.high[0] == max(s.high[:240]) and four.close[0] == s.close[239]
    with pytest.raises(DataError, match="cannot turn 1h candles into 90m"):
        resample(h, timeframe_ms("90m"))


def test_window_with_warmup():
    s = load_candles(KLINES / "binance-spot-BTCUSDT-1h-2022-01.csv.gz")
    w, start = window(s, parse_date("2022-01-10"), parse_date("2022-01-11", end=True), warmup=50)
    assert start == 50 and len(w) - start == 48 and w.ts[start] == parse_date("2022-01-10")
    with pytest.raises(DataError, match="no candles between"):
        window(s, parse_date("2023-01-01"), None)


def _write(tmp_path, text, name="c.csv", gz=False):
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return p


@pytest.mark.parametrize("text,match", [
    ("timestamp,open,high,low,close,volume\n2023-01-01 00:00:00,1,2,0.5,1.5,10\n2023-01-01 00:01:00,1,2,x,1,1\n",
     r"c.csv:3: malformed row"),
    ("1700000000000,1,2,0.5,1.5,10\n1700000060000,1,2,0.5\n", r"c.csv:2: expected at least 6 columns"),
    ("1700000000000,1,2,0.5,1.5,10\n1700000000000,1,2,0.5,1.5,10\n", r"c.csv:2: time .* not after"),
    ("1700000000000,1,2,0.5,1.5,10\n1700000060000,1,0.9,0.5,1.5,10\n", r"c.csv:2: inconsistent candle"),
    ("open_time,open\n", r"no candles found"),
])
def test_malformed_files_name_the_line(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_candles(_write(tmp_path, text))


def test_unreadable_files(tmp_path):
    (tmp_path / "x.csv.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    with pytest.raises(DataError, match="not a readable gzip"):
        load_candles(tmp_path / "x.csv.gz")
    with pytest.raises(DataError, match="cannot read file"):
        load_candles(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not a text CSV"):
        load_candles(tmp_path / "bin.csv")


def test_time_units(tmp_path):
    rows = "1700000000000000,1,2,0.5,1.5,10\n1700000060000000,1,2,0.5,1.5,10\n"  # µs (Binance spot 2025+)
    s = load_candles(_write(tmp_path, rows, gz=True, name="u.csv.gz"))
    assert s.ts == [1700000000000, 1700000060000]
    s = load_candles(_write(tmp_path, "1700000000,1,2,0.5,1.5,10\n", name="s.csv"))
    assert s.ts == [1700000000000]
    assert parse_date("2024-01-01T00:00:00Z") == 1704067200000
