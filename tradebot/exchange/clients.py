"""ccxt client factory: network selection, URL overrides, shared rate limiting, spot-only options."""

from __future__ import annotations

from urllib.parse import urlsplit

import ccxt
from requests.adapters import HTTPAdapter

from tradebot.exchange.ratelimit import LimiterRegistry, retry_after_seconds
from tradebot.exchange.settings import ExchangeSettings

SUPPORTED = ("binance", "bybit")
NETWORKS = ("live", "testnet")

# load_markets must hit ONE endpoint: Binance /api/v3/exchangeInfo, Bybit /v5/market/instruments-info?category=spot
OPTIONS = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,  # sapi, absent on testnet
        "fetchMargins": False,
        "adjustForTimeDifference": False,  # no /api/v3/time probe
        "defaultType": "spot",
    },
    "bybit": {
        "enableUnifiedAccount": True,  # skip the account-type probing calls
        "enableUnifiedMargin": False,
        "fetchMarkets": {"types": ["spot"]},
        "adjustForTimeDifference": False,
        "defaultType": "spot",
    },
}

# futures (USDT-M linear perpetuals) use their own clients: load_markets hits /fapi/v1/exchangeInfo or
# instruments-info?category=linear only, so a venue's futures API being down never breaks spot
FUTURES_OPTIONS = {
    ex: {**opts, "fetchMarkets": {"types": ["linear"]}, "defaultType": "swap", "defaultSubType": "linear"}
    for ex, opts in OPTIONS.items()
}


class _SharedLimiterMixin:
    """Hooks ccxt's sync request path: fetch2 (has the endpoint cost) and handle_errors (has response headers).

    handle_errors receives the headers of THIS response, unlike client.last_response_headers, which another
    thread sharing the client may have overwritten.
    """

    tb_limiter = None

    def fetch2(self, path, api="public", method="GET", params=None, config=None):
        params, config = params if params is not None else {}, config if config is not None else {}
        if self.tb_limiter is not None:
            self.tb_limiter.acquire(self.calculate_rate_limiter_cost(api, method, path, params, config))
        return super().fetch2(path, api, method, params, config)

    def handle_errors(self, code, reason, url, method, headers, body, response, request_headers, request_body):
        if self.tb_limiter is not None:
            if code in (418, 429):
                self.tb_limiter.pause(retry_after_seconds(headers))
            elif isinstance(response, dict) and str(response.get("retCode")) in ("10006", "10018"):
                self.tb_limiter.pause(1.0)  # Bybit rate limit answered with HTTP 200
        # ccxt binance turns -2015 into a retriable DDoSProtection once a key has worked; on a pooled client
        # that hides a revoked key or a removed trade permission behind endless retries. Bans come as 418/429.
        self.options["hasAlreadyAuthenticatedSuccessfully"] = False
        return super().handle_errors(code, reason, url, method, headers, body, response, request_headers, request_body)


_CLASSES: dict[str, type] = {}


def client_class(exchange: str) -> type:
    cls = _CLASSES.get(exchange)
    if cls is None:
        base = getattr(ccxt, exchange)
        cls = _CLASSES[exchange] = type(f"TB{exchange}", (_SharedLimiterMixin, base), {})
    return cls


def override_urls(client, base_url: str) -> None:
    """Point every REST entry at `base_url`, keeping each path part (/api/v3, /sapi/v1, /v5, ...)."""
    base = base_url.rstrip("/")
    api = client.urls["api"]
    if isinstance(api, str):
        client.urls["api"] = base + urlsplit(api).path
        return
    for key, value in list(api.items()):
        if isinstance(value, str):
            api[key] = base + urlsplit(value).path


def api_host(client) -> str:
    api = client.urls["api"]
    first = api if isinstance(api, str) else next(v for v in api.values() if isinstance(v, str))
    return urlsplit(client.implode_hostname(first)).netloc  # bybit keeps "api.{hostname}" templates


def make_client(exchange: str, network: str, settings: ExchangeSettings, limiters: LimiterRegistry,
                api_key: str | None = None, secret: str | None = None, pool_size: int = 4, futures: bool = False):
    if exchange not in SUPPORTED:
        raise ValueError(f"unsupported exchange {exchange!r}")
    if network not in NETWORKS:
        raise ValueError(f"unsupported network {network!r}")
    options = {**(FUTURES_OPTIONS if futures else OPTIONS)[exchange], "recvWindow": settings.recv_window_ms}
    config = {"enableRateLimit": False, "timeout": settings.timeout_ms, "options": options}
    if api_key:
        config.update(apiKey=api_key, secret=secret)
    client = client_class(exchange)(config)
    # bybit loads currencies from a private endpoint when keys are set; markets are shared instead
    client.has = {**client.has, "fetchCurrencies": False}
    if network == "testnet":
        client.set_sandbox_mode(True)  # FIRST: it rewrites urls['api']
    override = settings.testnet_api_url if network == "testnet" else settings.api_url
    if override:
        override_urls(client, override)
    rate = settings.rate_limit_per_second or 1000.0 / client.rateLimit
    client.tb_limiter = limiters.get(api_host(client), rate)
    if pool_size > 4:  # shared public clients serve many threads at once
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        client.session.mount("http://", adapter)
        client.session.mount("https://", adapter)
    return client
