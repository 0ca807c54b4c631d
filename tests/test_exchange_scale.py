"""Sharing: one klines fetch per candle for many pairs; bounded private clients for many users."""

import threading
import tracemalloc

from tests.fixtures_exchange import fast_settings
from tradebot.exchange.hub import ExchangeHub


def test_100_pairs_on_one_symbol_make_one_klines_request_per_candle(fake_exchange, exchange_hub):
    exchange_hub.markets("binance", "live")
    pairs, candles_seen, errors = 100, [], []
    for _ in range(3):  # three consecutive candles
        fake_exchange.advance(1)
        barrier = threading.Barrier(pairs)

        def cycle(barrier=barrier):
            try:
                barrier.wait()
                got = exchange_hub.market_data.candles("binance", "live", "BTC/USDT", "1m", 100)
                candles_seen.append(got[-1].ts)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=cycle) for _ in range(pairs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len(fake_exchange.requests_to("/api/v3/klines")) == 3
    assert len(candles_seen) == 300 and len(set(candles_seen)) == 3  # everyone saw the newest closed candle


def test_candles_refetched_only_when_a_candle_closes(fake_exchange, exchange_hub):
    md = exchange_hub.market_data
    first = md.candles("bybit", "live", "ETH/USDT", "5m", 20)
    fake_exchange.advance(1)
    if fake_exchange.now_ms % 300_000 >= 60_000:  # still inside the same 5m candle: served from memory
        assert md.candles("bybit", "live", "ETH/USDT", "5m", 20) == first
        assert len(fake_exchange.requests_to("/v5/market/kline")) == 1
    fake_exchange.advance(5)
    later = md.candles("bybit", "live", "ETH/USDT", "5m", 20)
    assert later[-1].ts > first[-1].ts and later[-1].ts + 300_000 <= fake_exchange.now_ms


def test_1000_idle_users_do_not_keep_1000_clients(fake_exchange):
    bound = 25
    hub = ExchangeHub(fast_settings(fake_exchange.url, private_clients_max=bound),
                      now_ms=lambda: fake_exchange.now_ms)
    hub.markets("binance", "live")
    for i in range(1000):
        fake_exchange.add_account(f"k{i}", f"s{i}", {"USDT": "10"}, exchange="binance")
    brokers = [hub.broker("binance", "live", f"k{i}", f"s{i}") for i in range(1000)]
    for b in brokers[:200]:  # 200 of them act once (a balance check), the other 800 never trade
        assert b.balance() == {"USDT": 10}
    del brokers
    assert hub.private_clients_count() == bound


def test_private_client_memory_is_bounded(fake_exchange):
    """tracemalloc figure: 50 users acting through a pool of 10 (each kept bybit client costs ~0.17 MB)."""
    hub = ExchangeHub(fast_settings(fake_exchange.url, private_clients_max=10), now_ms=lambda: fake_exchange.now_ms)
    hub.markets("bybit", "live")
    for i in range(50):
        fake_exchange.add_account(f"m{i}", f"s{i}", {"USDT": "1"}, exchange="bybit")
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for i in range(50):
            hub.broker("bybit", "live", f"m{i}", f"s{i}").balance()
        grown_mb = (tracemalloc.get_traced_memory()[0] - base) / 1e6
    finally:
        tracemalloc.stop()
    print(f"50 users through a pool of 10 clients: +{grown_mb:.1f} MB")
    assert hub.private_clients_count() == 10
    assert grown_mb < 4  # keeping all 50 clients measures ~8.5 MB


def test_idle_private_clients_expire(fake_exchange):
    clock = [0.0]
    hub = ExchangeHub(fast_settings(fake_exchange.url, private_client_idle_seconds=60),
                      now_ms=lambda: fake_exchange.now_ms, monotonic=lambda: clock[0])
    fake_exchange.add_account("k", "s", {"USDT": "5"}, exchange="bybit")
    hub.broker("bybit", "live", "k", "s").balance()
    assert hub.private_clients_count() == 1
    clock[0] += 61
    assert hub.private_clients_count() == 0


def test_paper_and_live_pairs_share_one_feed(fake_exchange, exchange_hub):
    md = exchange_hub.market_data
    assert md.candles("binance", "paper", "SOL/USDT", "1m", 30) == md.candles("binance", "live", "SOL/USDT", "1m", 30)
    assert md.last_price("binance", "paper", "SOL/USDT") == md.last_price("binance", "live", "SOL/USDT")
    assert len(fake_exchange.requests_to("/api/v3/klines")) == 1
    assert len(fake_exchange.requests_to("/api/v3/ticker/24hr")) == 1
