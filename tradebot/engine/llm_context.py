"""Optional context for the LLM prompt, each switched on in `[llm]` and fetched once per market and candle
(every pair of that market gets the same text, so their prompts stay identical and the answer is shared):

- context_timeframes: one line per other timeframe from the shared candle cache (close, change, trend, RSI).
- order_book_levels: bid/ask volume imbalance over the top N levels.
- funding rate and open interest, for futures pairs only.
- news_feeds: RSS/Atom headlines (llm_news.py), last `news_hours`, refreshed on a schedule.

A source that fails is left out of that prompt (logged once per market), never a reason to skip a decision.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from ..strategy.indicators import compute

log = logging.getLogger(__name__)


class LLMContext:
    def __init__(self, hub, llm_cfg, news=None):
        self.hub = hub
        self.timeframes = list(getattr(llm_cfg, "context_timeframes", None) or [])
        self.book_levels = int(getattr(llm_cfg, "order_book_levels", 0) or 0)
        feeds = list(getattr(llm_cfg, "news_feeds", None) or [])
        if news is None and feeds:
            from .llm_news import NewsFeeds

            news = NewsFeeds(feeds, hours=int(getattr(llm_cfg, "news_hours", 6) or 6),
                             refresh_seconds=60 * int(getattr(llm_cfg, "news_refresh_minutes", 15) or 15))
        self.news = news
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, tuple] = OrderedDict()
        self._warned: set[tuple] = set()

    def sections(self, exchange: str, network: str, symbol: str, timeframe: str, market_type: str,
                 candle_ts: int) -> tuple[tuple[str, str], ...]:
        key = (exchange, network, symbol, timeframe, market_type, candle_ts)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = []
        if self.timeframes:
            text = self._guard(key, "timeframes", lambda: self._timeframes(exchange, network, symbol, timeframe))
            if text:
                out.append(("Other timeframes (closed candles)", text))
        if self.book_levels:
            text = self._guard(key, "order book", lambda: self._book(exchange, network, symbol))
            if text:
                out.append((f"Order book (top {self.book_levels} levels)", text))
        if market_type == "futures":
            text = self._guard(key, "funding", lambda: self._funding(exchange, network, symbol))
            if text:
                out.append(("Funding and open interest", text))
        if self.news is not None:
            text = self.news.text()
            if text:
                out.append((f"News headlines (last {self.news.hours} h, source and time UTC)", text))
        result = tuple(out)
        with self._lock:
            result = self._cache.setdefault(key, result)  # the first one wins: identical for every pair
            while len(self._cache) > 2048:
                self._cache.popitem(last=False)
        return result

    def _guard(self, key: tuple, what: str, fn) -> str:
        try:
            return fn() or ""
        except Exception as exc:  # noqa: BLE001 - context is optional
            mark = (key[:3], what)
            if mark not in self._warned:
                self._warned.add(mark)
                log.warning("LLM context: %s for %s %s unavailable: %s", what, key[0], key[2], exc)
            return ""

    def _timeframes(self, exchange, network, symbol, own) -> str:
        md = self.hub.market_data
        lines = []
        for tf in self.timeframes:
            if tf == own:
                continue
            candles = md.candles(exchange, network, symbol, tf, 100)
            if not candles:
                continue
            snap = compute(candles)
            last, first = candles[-1], candles[-min(24, len(candles))]
            chg = (last.close / first.open - 1.0) * 100 if first.open else 0.0
            trend = ""
            if snap is not None and snap.ready:
                trend = (f", trend {'up' if snap.ema_fast > snap.ema_slow else 'down'} (EMA12 vs EMA26), "
                         f"RSI {snap.rsi:.1f}")
            lines.append(f"{tf}: close {last.close:.8g}, change over last {min(24, len(candles))} candles "
                         f"{chg:+.2f}%{trend}")
        return "\n".join(lines)

    def _book(self, exchange, network, symbol) -> str:
        client = self.hub.public_client(exchange, network)
        book = client.fetch_order_book(symbol, limit=_book_limit(self.book_levels))
        bids = book.get("bids", [])[: self.book_levels]
        asks = book.get("asks", [])[: self.book_levels]
        bid_vol = sum(float(b[1]) for b in bids)
        ask_vol = sum(float(a[1]) for a in asks)
        if not bids or not asks or bid_vol + ask_vol <= 0:
            return ""
        imb = (bid_vol - ask_vol) / (bid_vol + ask_vol) * 100
        spread = (float(asks[0][0]) - float(bids[0][0])) / float(bids[0][0]) * 100
        return (f"bid volume {bid_vol:.8g}, ask volume {ask_vol:.8g}, imbalance {imb:+.1f}% "
                f"(positive = more bids), spread {spread:.4f}%")

    def _funding(self, exchange, network, symbol) -> str:
        """The perpetual's current funding rate (shared with paper funding, cached 10 min) and open interest,
        through the venue's public futures endpoints (the spot client's raw calls, as market_data does)."""
        rate = self.hub.market_data.funding_rate(exchange, network, symbol)
        parts = [f"funding rate {float(rate) * 100:+.4f}% per 8h"]
        client = self.hub.public_client(exchange, network)
        market_id = symbol.split(":")[0].replace("/", "")
        if exchange == "binance":
            oi = client.fapiPublicGetOpenInterest({"symbol": market_id}).get("openInterest")
        else:
            rows = client.publicGetV5MarketTickers({"category": "linear", "symbol": market_id})["result"]["list"]
            oi = rows[0].get("openInterest") if rows else None
        if oi:
            parts.append(f"open interest {oi} {market_id.removesuffix('USDT')}")
        return ", ".join(parts)


def _book_limit(levels: int) -> int:
    """The exchanges accept a few fixed depths: the smallest one that covers `levels`."""
    for n in (5, 10, 20, 50, 100):
        if n >= levels:
            return n
    return 100
