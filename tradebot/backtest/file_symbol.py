"""Which symbol a candle file holds, when its name or its first lines say so (for a mismatch warning).

Binance names its kline files `BTCUSDT-1m-2024-02.csv` (data.binance.vision) and many tools prefix an
exchange, e.g. `binance-spot-BTCUSDT-1m-2023-01-21.csv.gz`: the upper-case token right before the
timeframe is the symbol. A zip is judged by the CSV inside; a CSV with a `symbol` column by its first row.
"""

from __future__ import annotations

import csv
import gzip
import re
import zipfile
from pathlib import Path

# SYMBOL-<timeframe>[-...]; upper case only, so that e.g. `data-1m.csv` is not mistaken for a symbol
_NAME = re.compile(r"(?:^|[-_ .])([A-Z0-9]{2,20}(?:[-_/][A-Z0-9]{2,10})?)[-_](\d+[smhdwM])(?=[-_.]|$)")
_SYMBOL_COLUMNS = ("symbol", "ticker", "pair")


def compact(symbol: str) -> str:
    """'BTC/USDT', 'btc-usdt', 'BTC/USDT:USDT' -> 'BTCUSDT' (for comparing, not for display)."""
    return re.sub(r"[^A-Z0-9]", "", symbol.upper().split(":")[0])


def symbol_in_name(name: str) -> str | None:
    m = _NAME.search(Path(name).name)
    return m.group(1) if m else None


def _first_lines(raw: bytes, n: int = 2) -> list[str]:
    text = raw.decode("utf-8", errors="replace")
    return [ln for ln in text.splitlines() if ln.strip()][:n]


def _symbol_in_rows(lines: list[str]) -> str | None:
    rows = list(csv.reader(lines))
    if len(rows) < 2:
        return None
    header = [h.strip().lower() for h in rows[0]]
    for col in _SYMBOL_COLUMNS:
        if col in header and header.index(col) < len(rows[1]):
            value = rows[1][header.index(col)].strip()
            return value or None
    return None


def file_symbol(path: str | Path) -> str | None:
    """The symbol the file says it holds, or None when it does not say. Never raises: a file that
    cannot be read is reported by the loader, not here."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if head[:4] == b"PK\x03\x04":
                with zipfile.ZipFile(fh) as zf:
                    members = [m for m in zf.infolist() if not m.is_dir()]
                    if len(members) != 1:
                        return symbol_in_name(path.name)
                    inner = symbol_in_name(members[0].filename)
                    with zf.open(members[0]) as f:
                        raw = f.read(4096)
            elif head[:2] == b"\x1f\x8b":
                inner = None
                with gzip.open(fh) as f:
                    raw = f.read(4096)
            else:
                inner = None
                raw = fh.read(4096)
        from_content = _symbol_in_rows(_first_lines(raw))
    except Exception:  # noqa: BLE001 - only a hint: a broken file is reported by the loader, not here
        return symbol_in_name(path.name)
    return from_content or inner or symbol_in_name(path.name)


def mismatch_warning(symbol: str, path: str | Path) -> str | None:
    """A one-line warning when the file says it holds another symbol than --symbol, else None."""
    found = file_symbol(path)
    if found is None or compact(found) == compact(symbol):
        return None
    return (f"warning: --symbol {symbol} but {Path(path).name} looks like {found} data; "
            f"the backtest runs on the file's prices as {symbol}")
