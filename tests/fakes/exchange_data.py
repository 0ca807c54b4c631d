"""Market data and instrument specs for the fake exchange.

Candles are the real Binance spot 1m bars vendored in tests/data (BTC 2023-01-01..14, ETH and SOL
2023-01-01..03, all from 2023-01-01 00:00 UTC), or a seeded synthetic random walk for symbols without a file.
Bybit instruments reuse the same candles. TRADEBOT_FAKE_DATA_DIR points the fake at another folder of files
with the same names (never TRADEBOT_DATA_DIR: that is the product's own data directory).
"""

from __future__ import annotations

import csv
import gzip
import os
import random
from calendar import timegm
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from time import strptime

MINUTE = 60_000
DATA_DIR = Path(os.environ.get("TRADEBOT_FAKE_DATA_DIR") or Path(__file__).resolve().parents[1] / "data")
# the 1m file per symbol; all start at REAL_START
SERIES_FILES = {
    "BTCUSDT": "binance-spot-BTCUSDT-1m-2023-01-01_2023-01-14.csv.gz",
    "ETHUSDT": "binance-spot-ETHUSDT-1m-2023-01-01_2023-01-03.csv.gz",
    "SOLUSDT": "binance-spot-SOLUSDT-1m-2023-01-01_2023-01-03.csv.gz",
}
REAL_START = 1672531200000  # 2023-01-01 00:00 UTC, first bar of the real files


@dataclass(frozen=True, slots=True)
class Spec:
    """One spot instrument as the fake serves it; field names follow Binance filters."""

    symbol: str  # exchange id, e.g. BTCUSDT
    base: str
    quote: str
    tick: Decimal  # PRICE_FILTER tickSize / Bybit priceFilter.tickSize
    step: Decimal  # LOT_SIZE stepSize / Bybit basePrecision
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal  # NOTIONAL minNotional / Bybit minOrderAmt
    quote_step: Decimal = Decimal("0.00000001")  # quote precision (Binance 8 dp, Bybit quotePrecision)


D = Decimal
# Binance values are the real exchangeInfo filters from ccxt's static fixtures (SOL from the same era).
BINANCE_SPECS = {
    "BTCUSDT": Spec("BTCUSDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("9000"), D("5")),
    "ETHUSDT": Spec("ETHUSDT", "ETH", "USDT", D("0.01"), D("0.0001"), D("0.0001"), D("9000"), D("5")),
    "SOLUSDT": Spec("SOLUSDT", "SOL", "USDT", D("0.01"), D("0.001"), D("0.001"), D("9000000"), D("5")),
}
# Bybit values from ccxt's static bybit markets (lotSizeFilter), tick relaxed to 0.01 to fit the 2023 prices.
BYBIT_SPECS = {
    "BTCUSDT": Spec("BTCUSDT", "BTC", "USDT", D("0.01"), D("0.000001"), D("0.000011"), D("83"), D("5"), D("0.0000001")),
    "ETHUSDT": Spec("ETHUSDT", "ETH", "USDT", D("0.01"), D("0.00001"), D("0.00029"), D("4616"), D("5"), D("0.0000001")),
    "SOLUSDT": Spec("SOLUSDT", "SOL", "USDT", D("0.01"), D("0.001"), D("0.001"), D("30000"), D("5"), D("0.0000001")),
}


class Series:
    """Contiguous 1m bars as strings (exact decimals), indexable by open time."""

    __slots__ = ("start", "o", "h", "l", "c", "v")

    def __init__(self, start: int, rows: list[tuple[str, str, str, str, str]]):
        self.start = start
        self.o, self.h, self.l, self.c, self.v = (list(col) for col in zip(*rows, strict=True))

    def __len__(self) -> int:
        return len(self.o)

    def index(self, ts: int) -> int:
        return (ts - self.start) // MINUTE

    def end(self) -> int:
        return self.start + len(self) * MINUTE


def _parse_ts(text: str) -> int:
    return timegm(strptime(text, "%Y-%m-%d %H:%M:%S")) * 1000


@lru_cache(maxsize=8)
def load_series(symbol_id: str, synthetic_seed: int | None = None) -> Series:
    """Real candles if a file exists for the symbol, else a seeded random walk of 40,000 bars."""
    name = SERIES_FILES.get(symbol_id)
    path = DATA_DIR / name if name else None
    if synthetic_seed is None and path is not None and path.exists():
        with gzip.open(path, "rt", newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            first_row = next(reader)
            rows = [tuple(first_row[1:6])]
            rows.extend(tuple(r[1:6]) for r in reader)
        return Series(_parse_ts(first_row[0]), rows)
    return synthetic_series(synthetic_seed or 1)


def synthetic_series(seed: int, n: int = 40_000, price: float = 100.0) -> Series:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        o = price
        c = max(0.01, o * (1 + rng.gauss(0, 0.001)))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.0005)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.0005)))
        rows.append((f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{rng.uniform(1, 100):.4f}"))
        price = c
    return Series(REAL_START, rows)
