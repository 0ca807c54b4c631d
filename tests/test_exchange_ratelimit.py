"""One limiter per host: a 429 with Retry-After pauses every thread and client for that long."""

import threading

import pytest

from tradebot.exchange.ratelimit import HostLimiter


@pytest.mark.parametrize("ex,path", [("binance", "/api/v3/ticker/24hr"), ("bybit", "/v5/market/tickers")])
def test_429_retry_after_is_honoured_across_threads(ex, path, fake_exchange, exchange_hub):
    clients = [exchange_hub.public_client(ex, "live")]
    fake_exchange.add_account("k", "s", {"USDT": "1"}, exchange=ex)
    clients.append(exchange_hub.private_client(ex, "live", "k", "s"))  # another client, same host
    assert clients[0].tb_limiter is clients[1].tb_limiter
    fake_exchange.fault(path, "http", status=429, retry_after=1)
    errors = []

    def worker(i):
        try:
            for _ in range(5):
                exchange_hub.market_data._prices.clear()  # force real requests
                symbol = ["BTC/USDT", "ETH/USDT", "SOL/USDT"][i % 3]
                exchange_hub.market_data.last_price(ex, "live", symbol)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors  # the throttled call was retried after the pause
    reqs = fake_exchange.requests_to(path)
    hit = next(r for r in reqs if r.status == 429)
    during = [r for r in reqs if hit.t + 0.05 < r.t < hit.t + 0.95]
    assert during == [], "requests reached the host during the Retry-After pause"
    assert any(r.t >= hit.t + 0.95 for r in reqs)
    assert clients[0].tb_limiter.pauses == 1


def test_token_bucket_spaces_calls_by_cost():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lim = HostLimiter("h", rate=10, capacity=10, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        lim.acquire(1)
    assert now[0] == 0  # the burst fits the bucket
    lim.acquire(5)
    assert now[0] == pytest.approx(0.5)
    lim.pause(3)
    lim.acquire(1)
    assert now[0] >= 3.5
