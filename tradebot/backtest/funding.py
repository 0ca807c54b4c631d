"""`tradebot backtest --funding FILE`: historical funding rates of a perpetual.

A CSV whose first column is the funding time (ms, s or an ISO UTC date-time) and whose last column is the
rate, e.g. Binance's fundingRate files (calc_time, funding_interval_hours, last_funding_rate) or a plain
`time,rate` list. A header row is skipped. Times are snapped to the funding grid (00:00/08:00/16:00 UTC)
so that a calc_time a few ms late still names its funding time."""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..risk_futures import FUNDING_MS
from .data import DataError, parse_time

MAX_ROWS = 200_000  # ~180 years of 8-hourly rates


def load_funding(path) -> dict[int, Decimal]:
    p = Path(path)
    rates: dict[int, Decimal] = {}
    try:
        with open(p, newline="") as fh:
            for n, row in enumerate(csv.reader(fh), 1):
                if not row or not "".join(row).strip():
                    continue
                if n > MAX_ROWS:
                    raise DataError(f"{p}: more than {MAX_ROWS:,} rows: not a funding-rate file")
                try:
                    ms = parse_time(row[0])
                    rate = Decimal(row[-1].strip())
                except (ValueError, InvalidOperation):
                    if n == 1:
                        continue  # the header
                    raise DataError(f"{p}, line {n}: expected a time and a rate, got {','.join(row)[:60]!r}") from None
                if not rate.is_finite() or abs(rate) >= Decimal("0.1"):
                    raise DataError(f"{p}, line {n}: {row[-1]!r} is not a funding rate per 8 h")
                snapped = (ms + FUNDING_MS // 2) // FUNDING_MS * FUNDING_MS
                rates[snapped] = rate
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: cannot read the funding file ({getattr(e, 'strerror', None) or e})") from None
    if not rates:
        raise DataError(f"{p}: no funding rates found")
    return rates
