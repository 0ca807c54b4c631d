"""The /connect check: one signed call that tells apart bad keys, missing trade permission, the wrong network
and an unreachable exchange."""

from __future__ import annotations

from tradebot.exchange.clients import make_client
from tradebot.exchange.errors import (
    AuthenticationFailed,
    ExchangeError,
    PermissionDenied,
    RetryPolicy,
    WrongNetwork,
    with_retry,
)


def _probe(hub, exchange: str, network: str, api_key: str, secret: str) -> dict:
    """-> {'can_trade': bool}. A fresh, unpooled client: a rejected key must not poison the pool."""
    s = hub.settings[exchange]
    client = make_client(exchange, network, s, hub.limiters, api_key, secret)
    policy = RetryPolicy(min(s.retry_attempts, 2), s.retry_base_delay, s.retry_max_delay)
    if exchange == "binance":
        account = with_retry(client.private_get_account, policy, exchange, "account")
        return {"can_trade": bool(account.get("canTrade"))}
    info = with_retry(client.private_get_v5_user_query_api, policy, exchange, "query-api")["result"]
    spot = (info.get("permissions") or {}).get("Spot") or []
    return {"can_trade": str(info.get("readOnly")) == "0" and "SpotTrade" in spot}


def check_credentials(hub, exchange: str, network: str, api_key: str, secret: str) -> dict:
    name = exchange.capitalize()
    try:
        result = _probe(hub, exchange, network, api_key, secret)
    except AuthenticationFailed as first:
        other = "testnet" if network == "live" else "live"
        try:
            _probe(hub, exchange, other, api_key, secret)
        except ExchangeError:
            raise first from None
        kind = "a testnet" if other == "testnet" else "a live (mainnet)"
        raise WrongNetwork(f"This looks like {kind} key for {name}; connect it with network {other}.") from None
    if not result["can_trade"]:
        raise PermissionDenied(f"The {name} API key cannot trade spot. Enable spot trading for the key and retry.")
    return result


def check_futures_permission(hub, exchange: str, network: str, api_key: str, secret: str) -> None:
    """One signed futures call when a user adds a futures pair on testnet/live: raises PermissionDenied
    saying what to enable when the key cannot trade USDT-M perpetuals."""
    s = hub.settings[exchange]
    client = make_client(exchange, network, s, hub.limiters, api_key, secret, futures=True)
    policy = RetryPolicy(min(s.retry_attempts, 2), s.retry_base_delay, s.retry_max_delay)
    name = exchange.capitalize()
    if exchange == "binance":
        try:
            account = with_retry(client.fapiPrivateV2GetAccount, policy, exchange, "futures account")
        except AuthenticationFailed:  # -2015: the key works for spot (checked at /connect) but not on /fapi
            account = {"canTrade": False}
        if not account.get("canTrade"):
            raise PermissionDenied(
                "The Binance API key cannot trade USDⓈ-M futures: enable Futures for the key (API Management > "
                "Edit restrictions > Enable Futures; the futures wallet must be opened once) and add the pair again."
            )
        return
    info = with_retry(client.private_get_v5_user_query_api, policy, exchange, "query-api")["result"]
    contract = (info.get("permissions") or {}).get("ContractTrade") or []
    if str(info.get("readOnly")) != "0" or not {"Order", "Position"} <= set(contract):
        raise PermissionDenied(
            f"The {name} API key cannot trade USDT perpetuals: give the key the Contract permissions Orders and "
            "Positions (API Management > Edit > Contract) and add the pair again."
        )
