"""ExchangeHub: one per process. Shared markets per (exchange, network), a bounded pool of private clients,
per-host rate limiters, the shared market-data service, brokers and the credential check."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

from tradebot.exchange.base import Broker, MarketRules
from tradebot.exchange.clients import NETWORKS, SUPPORTED, make_client
from tradebot.exchange.credentials import check_credentials, check_futures_permission
from tradebot.exchange.errors import ExchangeError, RetryPolicy, with_retry
from tradebot.exchange.live import LiveBroker
from tradebot.exchange.market_data import MarketData, wall_ms
from tradebot.exchange.paper import PaperBroker
from tradebot.exchange.ratelimit import LimiterRegistry
from tradebot.exchange.rules import resolve_symbol, rules_from_market
from tradebot.exchange.settings import ExchangeSettings

log = logging.getLogger(__name__)

class _Markets:
    __slots__ = ("client", "loaded_at", "generation")

    def __init__(self, client, loaded_at: float, generation: int):
        self.client, self.loaded_at, self.generation = client, loaded_at, generation


class ExchangeHub:
    def __init__(self, settings: dict[str, ExchangeSettings] | None = None, now_ms: Callable[[], int] = wall_ms,
                 monotonic: Callable[[], float] = time.monotonic):
        settings = settings or {}
        self.settings = {ex: settings.get(ex) or ExchangeSettings() for ex in SUPPORTED}
        self.limiters = LimiterRegistry()
        self._monotonic = monotonic
        self._markets: dict[tuple[str, str, bool], _Markets] = {}
        self._markets_locks = {(ex, net, fut): threading.Lock() for ex in SUPPORTED for net in NETWORKS
                               for fut in (False, True)}
        self.futures_prepared: dict[tuple, tuple[int, str]] = {}  # (account hash, symbol) -> (leverage, margin)
        self._private: OrderedDict[str, tuple[object, float, int]] = OrderedDict()
        self._private_lock = threading.Lock()
        self._rules_cache: dict[tuple, MarketRules] = {}
        self.market_data = MarketData(self.public_client, now_ms=now_ms, policy_for=self.policy,
                                      data_network=self.data_network)

    # configuration -------------------------------------------------------------------------------------------
    def data_network(self, exchange: str, network: str) -> str:
        """Paper trading reads public data from `paper_data_network` (live by default)."""
        self._check(exchange, network)
        return self.settings[exchange].paper_data_network if network == "paper" else network

    def policy(self, exchange: str) -> RetryPolicy:
        s = self.settings[exchange]
        return RetryPolicy(s.retry_attempts, s.retry_base_delay, s.retry_max_delay)

    @staticmethod
    def _check(exchange: str, network: str) -> None:
        if exchange not in SUPPORTED:
            raise ExchangeError(f"Unsupported exchange '{exchange}'. Use one of: {', '.join(SUPPORTED)}.")
        if network not in (*NETWORKS, "paper"):
            raise ExchangeError(f"Unsupported network '{network}'. Use live, testnet or paper.")

    # markets ----------------------------------------------------------------------------------------------------
    def public_client(self, exchange: str, network: str, futures: bool = False):
        """The shared public client of (exchange, network) with markets loaded, refreshed periodically; with
        `futures`, the one holding the venue's USDT-M linear perpetuals (testnet/live only). Only the first
        load is waited for: a due refresh runs in the background while callers keep the current markets."""
        network = self.data_network(exchange, network)
        key = (exchange, network, futures)
        entry = self._markets.get(key)
        if entry is not None:
            if self._monotonic() - entry.loaded_at >= self.settings[exchange].markets_refresh_seconds:
                self._refresh_in_background(key)
            return entry.client
        with self._markets_locks[key]:  # single-flight first load
            entry = self._markets.get(key)
            return entry.client if entry is not None else self._load_markets(key)

    def _refresh_in_background(self, key: tuple) -> None:
        """Reload a key's markets on a thread of its own. Binance's exchangeInfo is megabytes of JSON: done in
        the cycle that found the markets due, it held every cycle of that exchange for seconds once an hour."""
        lock = self._markets_locks[key]
        if not lock.acquire(blocking=False):
            return  # a load is under way
        refresh = self.settings[key[0]].markets_refresh_seconds

        def run() -> None:
            try:
                entry = self._markets.get(key)
                if entry is None or self._monotonic() - entry.loaded_at >= refresh:
                    self._load_markets(key)
            except Exception as exc:  # noqa: BLE001 - the old markets stay in use; retried when due again
                log.warning("markets refresh of %s %s failed: %s", key[0], key[1], exc)
            finally:
                lock.release()

        threading.Thread(target=run, name="markets-refresh", daemon=True).start()

    def _load_markets(self, key: tuple):
        """Load a key's markets into a NEW client and swap it in (caller holds the key's lock)."""
        exchange, network, futures = key
        entry = self._markets.get(key)
        client = make_client(exchange, network, self.settings[exchange], self.limiters, pool_size=32,
                             futures=futures)
        try:
            with_retry(client.load_markets, self.policy(exchange), exchange, "load_markets")
        except ExchangeError:
            if entry is not None:  # keep serving the old markets when a refresh fails
                entry.loaded_at = self._monotonic()
                return entry.client
            raise
        gen = entry.generation + 1 if entry else 1
        # swap in a NEW client: clients that share the old market dicts keep a consistent view
        self._markets[key] = _Markets(client, self._monotonic(), gen)
        self._rules_cache = {k: v for k, v in self._rules_cache.items() if k[:2] != key[:2]}
        return client

    def markets(self, exchange: str, network: str, futures: bool = False) -> dict:
        return self.public_client(exchange, network, futures).markets

    def resolve_symbol(self, exchange: str, network: str, text: str) -> str:
        return resolve_symbol(self.markets(exchange, network), text, exchange)

    def market_rules(self, exchange: str, network: str, symbol: str) -> MarketRules:
        network = self.data_network(exchange, network)
        key = (exchange, network, symbol)
        rules = self._rules_cache.get(key)
        if rules is None and ":" in symbol and network != "paper":  # a perpetual: the futures markets
            market = self.markets(exchange, network, True).get(symbol)
            if market is None:
                raise ExchangeError(f"{symbol} is not a perpetual on {exchange.capitalize()} {network}.")
            rules = self._rules_cache[key] = rules_from_market(market)
        if rules is None:
            market = self.markets(exchange, network).get(symbol)
            if market is None:
                self.resolve_symbol(exchange, network, symbol)  # raises UnknownSymbol with hints
                market = self.markets(exchange, network)[self.resolve_symbol(exchange, network, symbol)]
            rules = self._rules_cache[key] = rules_from_market(market)
        return rules

    # private clients (bounded LRU with idle expiry) -----------------------------------------------------------------
    def private_client(self, exchange: str, network: str, api_key: str, secret: str, futures: bool = False):
        self._check(exchange, network)
        source = self.public_client(exchange, network, futures)
        gen = self._markets[(exchange, network, futures)].generation
        key = hashlib.sha256(f"{exchange}\0{network}\0{api_key}\0{secret}\0{futures}".encode()).hexdigest()
        now = self._monotonic()
        with self._private_lock:
            self._expire(now)
            item = self._private.pop(key, None)
            if item is not None:
                client, _, cgen = item
                if cgen != gen:  # markets were refreshed: share the new ones
                    client.set_markets_from_exchange(source)
                self._private[key] = (client, now, gen)
                return client
        client = make_client(exchange, network, self.settings[exchange], self.limiters, api_key, secret,
                             futures=futures)
        client.set_markets_from_exchange(source)  # shares references: +0 MB per client
        with self._private_lock:
            self._private[key] = (client, now, gen)
            bound = self.settings[exchange].private_clients_max
            while len(self._private) > bound:
                self._private.popitem(last=False)
        return client

    def _expire(self, now: float) -> None:
        idle = min(s.private_client_idle_seconds for s in self.settings.values())
        while self._private:
            _, (_, used, _) = next(iter(self._private.items()))
            if now - used < idle:
                break
            self._private.popitem(last=False)

    def private_clients_count(self) -> int:
        with self._private_lock:
            self._expire(self._monotonic())
            return len(self._private)

    # brokers and credentials ----------------------------------------------------------------------------------------
    def broker(self, exchange: str, network: str, api_key: str | None = None, secret: str | None = None) -> Broker:
        self._check(exchange, network)
        if network == "paper":
            data_net = self.data_network(exchange, network)
            st = self.settings[exchange]
            return PaperBroker(exchange, lambda s: self.market_rules(exchange, data_net, s),
                               lambda s: self.market_data.last_price(exchange, data_net, s),
                               now_ms=self.market_data.now_ms, futures_taker_fee=st.paper_futures_taker_fee,
                               funding_rate=st.paper_funding_rate,
                               funding_source=lambda s: self.market_data.funding_rate(exchange, data_net, s))
        if not api_key or not secret:
            raise ExchangeError(f"No API key connected for {exchange.capitalize()} {network}. Use /connect first.")
        return LiveBroker(self, exchange, network, api_key, secret)

    def check_credentials(self, exchange: str, network: str, api_key: str, secret: str) -> dict:
        """One signed call; raises AuthenticationFailed, PermissionDenied, WrongNetwork or ExchangeUnavailable."""
        self._check(exchange, network)
        if network == "paper":
            return {"can_trade": True}
        return check_credentials(self, exchange, network, api_key, secret)

    def check_futures_permission(self, exchange: str, network: str, api_key: str, secret: str) -> None:
        """Raises PermissionDenied (saying what to enable) when the key cannot trade USDT-M perpetuals."""
        self._check(exchange, network)
        if network != "paper":
            check_futures_permission(self, exchange, network, api_key, secret)

    def last_price(self, exchange: str, network: str, symbol: str) -> Decimal:
        return self.market_data.last_price(exchange, self.data_network(exchange, network), symbol)
