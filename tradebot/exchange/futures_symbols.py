"""Futures symbols: how users write a USDT-M perpetual and the names ccxt and the bot use for it.

ccxt names a USDT-margined linear perpetual `BTC/USDT:USDT`; users also type `BTCUSDT.P` (TradingView),
`BTCUSDT perp`, `BTC-USDT-SWAP` or the spot name plus the word `futures`. The bot stores `BTC/USDT:USDT`
for a futures pair, so a user may hold spot BTC/USDT and futures BTC/USDT:USDT side by side.
"""

from __future__ import annotations

import re

FUTURES_WORDS = ("futures", "future", "perp", "perpetual", "swap", "usdm", "linear")
_SUFFIX = re.compile(r"(?i)(?:[.\-_ ]?(?:p|perp|perpetual|swap))$")


def is_futures_symbol(symbol: str) -> bool:
    return ":" in (symbol or "")


def split_futures_text(text: str) -> tuple[str, bool]:
    """(spot-style text, True when the text itself names a perpetual). 'BTC/USDT:USDT' -> ('BTC/USDT', True),
    'btcusdt.p' -> ('btcusdt', True), 'BTCUSDT' -> ('BTCUSDT', False)."""
    t = (text or "").strip()
    if ":" in t:
        return t.split(":", 1)[0], True
    m = _SUFFIX.search(t)
    if m and len(t) - len(m.group(0)) >= 5:  # 'BTCUSDT.P', 'BTCUSDT-PERP', 'BTC-USDT-SWAP'
        return t[: m.start()], True
    return t, False


def futures_symbol(spot_symbol: str) -> str:
    """'BTC/USDT' -> 'BTC/USDT:USDT' (USDT-margined linear perpetual)."""
    quote = spot_symbol.split("/")[-1]
    return f"{spot_symbol}:{quote}"


def data_symbol(symbol: str) -> str:
    """The spot symbol whose market data a futures pair's paper trading and indicators read."""
    return symbol.split(":", 1)[0]
