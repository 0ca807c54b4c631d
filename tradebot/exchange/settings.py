"""Per-exchange settings (config `[exchanges.<name>]`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ExchangeSettings:
    api_url: str | None = None  # live REST base override (a mirror, or a fake in tests), e.g. http://127.0.0.1:8899
    testnet_api_url: str | None = None  # same for testnet
    timeout_ms: int = 10_000
    # A signed request the exchange processes later than this after signing is refused; after an
    # ambiguous order failure the broker waits it out, so its lookup by client id is final.
    recv_window_ms: int = 5_000
    markets_refresh_seconds: int = 3600
    paper_data_network: str = "live"  # where paper trading reads prices: live | testnet
    paper_futures_taker_fee: Decimal = Decimal("0.0005")  # paper futures fee on the notional
    paper_funding_rate: Decimal = Decimal("0.0001")  # paper futures funding rate, every 8 h
    retry_attempts: int = 4  # total tries of a retriable read
    retry_base_delay: float = 0.5  # seconds; doubles per try, with jitter
    retry_max_delay: float = 8.0
    rate_limit_per_second: float | None = None  # limiter refill in ccxt cost units; None = ccxt's rateLimit
    private_clients_max: int = 64  # LRU bound of live private ccxt clients per hub
    private_client_idle_seconds: float = 600.0  # evicted when unused this long
