"""Pytest fixtures of the exchange area: a fake exchange on 127.0.0.1 and hubs pointed at it.

    def test_x(fake_exchange, exchange_hub):
        fake_exchange.add_account("k", "s", {"USDT": "100"}, exchange="binance")
        broker = exchange_hub.broker("binance", "live", "k", "s")

`fake_exchange` serves Binance (/api/v3) and Bybit (/v5) at once; `exchange_hub` points both exchanges'
live AND testnet URLs at it, follows its clock, and uses tiny retry delays and a loose rate limit.
"""

from __future__ import annotations

import pytest

from tests.fakes.exchange import FakeExchange
from tradebot.exchange.hub import ExchangeHub
from tradebot.exchange.settings import ExchangeSettings


def fast_settings(live_url: str, testnet_url: str | None = None, **overrides) -> dict[str, ExchangeSettings]:
    kw = dict(api_url=live_url, testnet_api_url=testnet_url or live_url, timeout_ms=2000, retry_attempts=3,
              retry_base_delay=0.01, retry_max_delay=0.05, rate_limit_per_second=10_000,
              recv_window_ms=2000)
    kw.update(overrides)
    return {ex: ExchangeSettings(**kw) for ex in ("binance", "bybit")}


@pytest.fixture
def fake_exchange_factory():
    started: list[FakeExchange] = []

    def make(**kw) -> FakeExchange:
        fake = FakeExchange(**kw).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def fake_exchange(fake_exchange_factory) -> FakeExchange:
    return fake_exchange_factory()


@pytest.fixture
def exchange_hub(fake_exchange) -> ExchangeHub:
    return ExchangeHub(fast_settings(fake_exchange.url), now_ms=lambda: fake_exchange.now_ms)
