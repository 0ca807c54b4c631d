"""Shared market data: candles and prices fetched ONCE per (exchange, network, symbol, timeframe) per candle
(or per ticker TTL) and served to every pair and user. Thread-safe; concurrent callers of one key wait for a
single fetch (single-flight) instead of issuing their own.

A USDT-M perpetual (`BTC/USDT:USDT`) has its own data: its candles and last price come from the venue's
futures markets (Binance /fapi/v1/klines, Bybit v5 kline category=linear), and its mark price (what positions
are valued, liquidated and funded at) from Binance /fapi/v1/premiumIndex or Bybit linear tickers."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal

import ccxt

from tradebot.exchange.errors import RetryPolicy, with_retry
from tradebot.strategy.base import Candle


def timeframe_ms(timeframe: str) -> int:
    return int(ccxt.Exchange.parse_timeframe(timeframe) * 1000)


def wall_ms() -> int:
    return int(time.time() * 1000)


class _Series:
    __slots__ = ("candles", "boundary", "complete", "fetched_at")

    def __init__(self, maxlen: int):
        self.candles: deque[Candle] = deque(maxlen=maxlen)
        self.boundary = -1  # open time of the candle in progress when last fetched
        self.complete = False  # did that fetch include the candle that had just closed?
        self.fetched_at = 0.0  # monotonic


class _Price:
    __slots__ = ("value", "at")

    def __init__(self, value: Decimal, at: int):
        self.value, self.at = value, at


def _stale(p: _Price | None, now: int, slot_ms: int | None, ttl_ms: int) -> bool:
    """A price must be asked again: none yet, from another slot of the wall-clock grid (with `slot_ms`), or
    older than `ttl_ms` (without). A clock that went back also counts as another slot."""
    if p is None:
        return True
    if slot_ms:
        return now // slot_ms != p.at // slot_ms or now < p.at
    return now - p.at >= ttl_ms


class MarketData:
    def __init__(self, client_for: Callable[[str, str], object], now_ms: Callable[[], int] = wall_ms,
                 policy_for: Callable[[str], RetryPolicy] | None = None, max_candles: int = 300,
                 ticker_ttl_ms: int = 5_000, lag_retry_seconds: float = 2.0,
                 data_network: Callable[[str, str], str] = lambda _exchange, network: network):
        self._client_for = client_for  # (exchange, network) -> ccxt client with markets loaded
        self._data_network = data_network  # 'paper' reads the live (or testnet) feed: share its cache
        self.now_ms = now_ms
        self._policy_for = policy_for or (lambda _exchange: RetryPolicy())
        self.max_candles = max_candles
        self.ticker_ttl_ms = ticker_ttl_ms
        self.lag_retry_seconds = lag_retry_seconds
        self._series: dict[tuple, _Series] = {}
        self._prices: dict[tuple, _Price] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0  # network fetches made (for tests and benchmarks)

    def _lock(self, key: tuple) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def candles(self, exchange: str, network: str, symbol: str, timeframe: str, limit: int = 100) -> list[Candle]:
        """Up to `limit` (<= max_candles) CLOSED candles, oldest first."""
        limit = min(limit, self.max_candles)
        network = self._data_network(exchange, network)
        tf = timeframe_ms(timeframe)
        key = (exchange, network, symbol, timeframe)
        with self._lock(key):  # single-flight: one fetch per key, the others wait here and reuse it
            now = self.now_ms()
            boundary = now - now % tf
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = _Series(self.max_candles)
            stale = s.boundary != boundary or len(s.candles) < limit
            lagging = not s.complete and time.monotonic() - s.fetched_at >= self.lag_retry_seconds
            if stale or lagging:
                self._fetch(s, exchange, network, symbol, timeframe, tf, now, boundary, max(limit, len(s.candles)))
            closed = list(s.candles)
        return closed[-limit:]

    def _client(self, exchange: str, network: str, symbol: str):
        """The shared public client whose markets hold `symbol`: the futures one for a perpetual."""
        if ":" in symbol:
            return self._client_for(exchange, network, True)
        return self._client_for(exchange, network)

    def _fetch(self, s: _Series, exchange, network, symbol, timeframe, tf, now, boundary, want) -> None:
        client = self._client(exchange, network, symbol)
        last = s.candles[-1].ts if s.candles else None
        # Once the series is full, ask only for the candles closed since its last one (+1 of overlap, +1
        # in progress): parsing 300 rows per symbol per candle was most of the market-data CPU.
        top_up = last is not None and len(s.candles) >= want and (boundary - last) // tf <= want
        n = (boundary - last) // tf + 1 if top_up else want + 1
        rows = with_retry(lambda: client.fetch_ohlcv(symbol, timeframe, limit=n),
                          self._policy_for(exchange), exchange, "fetch_ohlcv")
        self.fetches += 1
        closed = [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0))
                  for r in rows if r[0] + tf <= now]
        if top_up and closed and closed[0].ts <= last:
            s.candles.extend(c for c in closed if c.ts > last)  # maxlen drops the oldest
        else:  # first fetch, a gap, or an answer that does not reach back to what we hold: start over
            if top_up:
                rows = with_retry(lambda: client.fetch_ohlcv(symbol, timeframe, limit=want + 1),
                                  self._policy_for(exchange), exchange, "fetch_ohlcv")
                self.fetches += 1
                closed = [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                                 float(r[5] or 0)) for r in rows if r[0] + tf <= now]
            s.candles.clear()
            s.candles.extend(closed)
        s.boundary = boundary
        s.complete = bool(s.candles) and s.candles[-1].ts == boundary - tf
        s.fetched_at = time.monotonic()

    def last_price(self, exchange: str, network: str, symbol: str, slot_ms: int | None = None) -> Decimal:
        """Last traded price from the ticker, shared for `ticker_ttl_ms` of the clock; with `slot_ms` (a
        trading cycle's interval) shared for the rest of the current slot of the wall-clock grid, so every
        pair of a symbol cycling in that slot uses one request: at most one per symbol per slot."""
        network = self._data_network(exchange, network)
        key = (exchange, network, symbol)
        with self._lock(key):
            now = self.now_ms()
            p = self._prices.get(key)
            if _stale(p, now, slot_ms, self.ticker_ttl_ms):
                client = self._client(exchange, network, symbol)
                t = with_retry(lambda: client.fetch_ticker(symbol), self._policy_for(exchange), exchange,
                               "fetch_ticker")
                self.fetches += 1
                last = t.get("last") or t.get("close")
                p = self._prices[key] = _Price(Decimal(str(last)), now)
            return p.value

    def prefetch_prices(self, exchange: str, network: str, symbols, slot_ms: int) -> int:
        """The slot's last price of several symbols of one exchange in ONE request (fetch_tickers), stored
        as if each had been asked by last_price(slot_ms=...): the cycles of the slot then ask nothing.
        Returns the number of prices stored; raises on a failed request (the caller falls back)."""
        network = self._data_network(exchange, network)
        now = self.now_ms()
        want = []
        for symbol in sorted(s for s in set(symbols) if ":" not in s):  # perpetuals: prefetch_marks
            p = self._prices.get((exchange, network, symbol))
            if _stale(p, now, slot_ms, 0):
                want.append(symbol)
        if not want:
            return 0
        client = self._client_for(exchange, network)
        tickers = with_retry(lambda: client.fetch_tickers(want), self._policy_for(exchange), exchange,
                             "fetch_tickers")
        self.fetches += 1
        stored = 0
        for symbol in want:
            t = tickers.get(symbol) or {}
            last = t.get("last") or t.get("close")
            if last is None:
                continue  # that symbol's cycle asks for its own ticker
            with self._lock((exchange, network, symbol)):
                self._prices[(exchange, network, symbol)] = _Price(Decimal(str(last)), now)
            stored += 1
        return stored

    def mark_price(self, exchange: str, network: str, symbol: str, slot_ms: int | None = None) -> Decimal:
        """The mark price of the USDT-M perpetual `symbol` (BTC/USDT:USDT), shared like last_price: one
        request per (exchange, perpetual) per slot (or per ticker TTL without `slot_ms`). The same answer
        carries the funding rate, which is stored too (funding_rate() then asks nothing for 10 min)."""
        network = self._data_network(exchange, network)
        market_id = _market_id(symbol)
        key = ("mark", exchange, network, market_id)
        with self._lock(key):
            now = self.now_ms()
            p = self._prices.get(key)
            if _stale(p, now, slot_ms, self.ticker_ttl_ms):
                client = self._client_for(exchange, network)
                rows = with_retry(lambda: _fetch_premium(client, exchange, market_id), self._policy_for(exchange),
                                  exchange, "mark_price")
                self.fetches += 1
                p = self._store_marks(exchange, network, rows, now).get(market_id)
                if p is None:
                    raise ValueError(f"no mark price of {symbol} on {exchange}")
            return p.value

    def prefetch_marks(self, exchange: str, network: str, symbols, slot_ms: int) -> int:
        """The slot's mark price of several perpetuals of one exchange in ONE request (Binance premiumIndex
        and Bybit linear tickers answer every symbol when none is named), as if each had been asked by
        mark_price(slot_ms=...). Returns the number stored; raises on a failed request."""
        network = self._data_network(exchange, network)
        now = self.now_ms()
        want = set()
        for symbol in set(symbols):
            p = self._prices.get(("mark", exchange, network, _market_id(symbol)))
            if _stale(p, now, slot_ms, 0):
                want.add(_market_id(symbol))
        if not want:
            return 0
        client = self._client_for(exchange, network)
        rows = with_retry(lambda: _fetch_premium(client, exchange, None), self._policy_for(exchange), exchange,
                          "prefetch_marks")
        self.fetches += 1
        return len(set(self._store_marks(exchange, network, rows, now, want)) & want)

    def _store_marks(self, exchange: str, network: str, rows, now: int, only=None) -> dict:
        """Mark prices (and the funding rates in the same rows) of a premiumIndex / linear tickers answer."""
        out = {}
        for market_id, mark, rate in rows:
            if mark is None or (only is not None and market_id not in only):
                continue
            # a plain store (atomic): the per-key lock is for single flight, and mark_price holds it here
            out[market_id] = self._prices[("mark", exchange, network, market_id)] = _Price(Decimal(str(mark)), now)
            if rate not in (None, ""):
                self._prices[("funding", exchange, network, market_id)] = _Price(Decimal(str(rate)), now)
        return out

    FUNDING_TTL_MS = 600_000  # the venues move the predicted rate slowly: one request per symbol per 10 min

    def funding_rate(self, exchange: str, network: str, symbol: str) -> Decimal:
        """The venue's current funding rate of the USDT-M perpetual of `symbol` (BTC/USDT or BTC/USDT:USDT),
        through the public client's raw endpoints (Binance /fapi/v1/premiumIndex, Bybit /v5/market/tickers
        category=linear), shared for FUNDING_TTL_MS. Raises when the venue does not answer it."""
        network = self._data_network(exchange, network)
        market_id = _market_id(symbol)
        key = ("funding", exchange, network, market_id)
        with self._lock(key):
            now = self.now_ms()
            p = self._prices.get(key)
            if p is None or now - p.at >= self.FUNDING_TTL_MS or now < p.at:
                client = self._client_for(exchange, network)
                raw = with_retry(lambda: _fetch_funding(client, exchange, market_id), self._policy_for(exchange),
                                 exchange, "funding_rate")
                self.fetches += 1
                p = self._prices[key] = _Price(Decimal(str(raw)), now)
            return p.value

    def forget(self, exchange: str, network: str, symbol: str, timeframe: str | None = None) -> None:
        """Drop cached data of a symbol nobody trades any more (keeps memory flat)."""
        with self._guard:
            for key in [k for k in self._series if k[:3] == (exchange, network, symbol)
                        and timeframe in (None, k[3])]:
                self._series.pop(key, None)
            self._prices.pop((exchange, network, symbol), None)


def _market_id(symbol: str) -> str:
    """'BTC/USDT:USDT' (or 'BTC/USDT') -> 'BTCUSDT', the venues' id of the USDT-M perpetual."""
    return symbol.split(":")[0].replace("/", "")


def _fetch_premium(client, exchange: str, market_id: str | None) -> list[tuple]:
    """[(market id, mark price, funding rate)] of one perpetual, or of all of them (market_id None), through
    the public client's raw endpoints (no futures markets needed)."""
    if exchange == "binance":
        res = client.fapiPublicGetPremiumIndex({"symbol": market_id} if market_id else {})
        rows = res if isinstance(res, list) else [res]
        return [(r.get("symbol"), r.get("markPrice"), r.get("lastFundingRate")) for r in rows]
    req = {"category": "linear", **({"symbol": market_id} if market_id else {})}
    rows = client.publicGetV5MarketTickers(req)["result"]["list"]
    return [(r.get("symbol"), r.get("markPrice"), r.get("fundingRate")) for r in rows]


def _fetch_funding(client, exchange: str, market_id: str):
    if exchange == "binance":
        return client.fapiPublicGetPremiumIndex({"symbol": market_id})["lastFundingRate"]
    res = client.publicGetV5MarketTickers({"category": "linear", "symbol": market_id})
    return res["result"]["list"][0]["fundingRate"]
