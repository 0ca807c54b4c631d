"""Live broker and hub through real ccxt HTTP against the fake exchange, on both exchanges."""

import time
from decimal import Decimal as D

import pytest

from tests.fixtures_exchange import fast_settings
from tradebot.exchange.errors import (
    AuthenticationFailed,
    BelowMinimum,
    ExchangeError,
    InsufficientFunds,
    PermissionDenied,
)
from tradebot.exchange.hub import ExchangeHub
from tradebot.exchange.live import new_client_order_id

EXCHANGES = ["binance", "bybit"]
ORDER_PATH = {"binance": "/api/v3/order", "bybit": "/v5/order/create"}
KLINES = {"binance": "/api/v3/klines", "bybit": "/v5/market/kline"}


def order_posts(fake, ex):
    return fake.requests_to(ORDER_PATH[ex], "POST")


@pytest.fixture
def account(fake_exchange):
    def make(ex, usdt="1000", **kw):
        fake_exchange.add_account(f"key-{ex}", f"secret-{ex}", {"USDT": usdt}, exchange=ex, **kw)
        return f"key-{ex}", f"secret-{ex}"
    return make


@pytest.mark.parametrize("ex", EXCHANGES)
def test_round_trip_markets_data_balance_orders_lookup(ex, fake_exchange, exchange_hub, account):
    key, secret = account(ex)
    markets = exchange_hub.markets(ex, "live")
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(markets)
    price = exchange_hub.last_price(ex, "live", "BTC/USDT")
    assert price == fake_exchange.price("BTCUSDT")
    candles = exchange_hub.market_data.candles(ex, "live", "BTC/USDT", "1m", 50)
    assert len(candles) == 50 and candles[-1].ts + 60_000 <= fake_exchange.now_ms  # closed only, oldest first
    assert [c.ts for c in candles] == sorted(c.ts for c in candles)

    broker = exchange_hub.broker(ex, "live", key, secret)
    assert broker.balance() == {"USDT": D("1000")}
    buy_id = new_client_order_id()
    buy = broker.market_buy("BTC/USDT", D("100"), buy_id)
    assert buy.status == "filled" and buy.client_order_id == buy_id and buy.side == "buy"
    assert buy.price == price and buy.fee_currency == "BTC"
    assert buy.net_base == buy.amount - buy.fee > 0  # fee taken in base (GUIDE 3)
    assert fake_exchange.balances(key)["BTC"] == buy.net_base
    assert fake_exchange.balances(key)["USDT"] == D("1000") - buy.cost

    fake_exchange.advance(30)
    sell = broker.market_sell("BTC/USDT", buy.net_base, new_client_order_id())  # rounds DOWN to the step
    assert sell.status == "filled" and sell.amount <= buy.net_base and sell.fee_currency == "USDT"
    assert sell.price == fake_exchange.price("BTCUSDT")
    assert sell.net_quote == sell.cost - sell.fee
    assert fake_exchange.balances(key)["USDT"] == D("1000") - buy.cost + sell.net_quote

    found = broker.find_order("BTC/USDT", buy_id)
    assert found is not None and found.exchange_order_id == buy.exchange_order_id and found.net_base == buy.net_base
    assert broker.find_order("BTC/USDT", new_client_order_id()) is None

    signed = [r for r in fake_exchange.requests if r.signature_ok is not None]
    assert signed and all(r.signature_ok for r in signed)
    assert len(order_posts(fake_exchange, ex)) == 2
    sent_ids = [r.params.get("newClientOrderId") or r.params.get("orderLinkId") for r in order_posts(fake_exchange, ex)]
    assert sent_ids[0] == buy_id


@pytest.mark.parametrize("ex", EXCHANGES)
def test_fill_then_drop_is_recovered_by_client_id(ex, fake_exchange, exchange_hub, account):
    key, secret = account(ex)
    broker = exchange_hub.broker(ex, "live", key, secret)
    fake_exchange.fault(ORDER_PATH[ex], "fill_then_drop", method="POST")
    cid = new_client_order_id()
    fill = broker.market_buy("BTC/USDT", D("50"), cid)
    assert fill.client_order_id == cid and fill.status == "filled" and fill.net_base > 0
    orders = fake_exchange.orders(key)
    assert len(orders) == 1 and orders[0].client_id == cid
    assert len(order_posts(fake_exchange, ex)) == 1  # looked up, never resent


@pytest.mark.parametrize("ex", EXCHANGES)
def test_dropped_before_booking_is_resent_once(ex, fake_exchange, exchange_hub, account):
    key, secret = account(ex)
    broker = exchange_hub.broker(ex, "live", key, secret)
    fake_exchange.fault(ORDER_PATH[ex], "reset", method="POST")
    cid = new_client_order_id()
    fill = broker.market_buy("BTC/USDT", D("50"), cid)
    assert fill.client_order_id == cid
    assert len(fake_exchange.orders(key)) == 1
    assert len(order_posts(fake_exchange, ex)) == 2


@pytest.mark.parametrize("ex", EXCHANGES)
def test_order_delayed_in_transit_is_found_not_resent(ex, fake_exchange, account):
    """The client times out while the order is still on its way; it is booked within its recvWindow.
    The broker must wait the window out before deciding it was never booked: no second send."""
    hub = ExchangeHub(fast_settings(fake_exchange.url, recv_window_ms=4000), now_ms=lambda: fake_exchange.now_ms)
    key, secret = account(ex)
    broker = hub.broker(ex, "live", key, secret)
    fake_exchange.fault(ORDER_PATH[ex], "delay", delay=3.0, method="POST")  # client timeout is 2 s
    cid = new_client_order_id()
    fill = broker.market_buy("BTC/USDT", D("50"), cid)
    assert fill.client_order_id == cid and fill.amount > 0
    assert len(order_posts(fake_exchange, ex)) == 1  # found by the lookup, never sent again
    assert len(fake_exchange.orders(key)) == 1


def test_fake_refuses_a_request_processed_after_its_recv_window(fake_exchange, account):
    hub = ExchangeHub(fast_settings(fake_exchange.url, recv_window_ms=500, retry_attempts=1),
                      now_ms=lambda: fake_exchange.now_ms)
    key, secret = account("binance")
    fake_exchange.fault(ORDER_PATH["binance"], "delay", delay=2.5, method="POST")
    with pytest.raises(ExchangeError):
        hub.broker("binance", "live", key, secret).market_buy("BTC/USDT", D("50"), new_client_order_id())
    time.sleep(1.2)  # let the delayed request reach the book (and be refused)
    assert fake_exchange.orders(key) == []


@pytest.mark.parametrize("ex", EXCHANGES)
def test_below_min_notional_refused_before_sending(ex, fake_exchange, exchange_hub, account):
    key, secret = account(ex)
    broker = exchange_hub.broker(ex, "live", key, secret)
    with pytest.raises(BelowMinimum) as err:
        broker.market_buy("BTC/USDT", D("4.20"), new_client_order_id())
    assert err.value.user_message == "Order value 4.20 USDT is below the exchange minimum of 5 USDT for BTC/USDT"
    with pytest.raises(BelowMinimum, match="minimum"):
        broker.market_sell("BTC/USDT", D("0.0001"), new_client_order_id())  # ~1.65 USDT
    assert order_posts(fake_exchange, ex) == []


@pytest.mark.parametrize("ex", EXCHANGES)
def test_auth_and_insufficient_funds_are_typed_and_not_retried(ex, fake_exchange, exchange_hub, account):
    key, secret = account(ex, usdt="20")
    bad = exchange_hub.broker(ex, "live", key, "wrong-secret")
    private_path = "/api/v3/account" if ex == "binance" else "/v5/account/wallet-balance"
    with pytest.raises(AuthenticationFailed) as err:
        bad.balance()
    assert "wrong-secret" not in err.value.user_message and err.value.needs_user_action
    assert len(fake_exchange.requests_to(private_path)) == 1

    broker = exchange_hub.broker(ex, "live", key, secret)
    with pytest.raises(InsufficientFunds):
        broker.market_buy("BTC/USDT", D("100"), new_client_order_id())
    assert len(order_posts(fake_exchange, ex)) == 1
    assert fake_exchange.orders(key) == []


@pytest.mark.parametrize("ex", EXCHANGES)
def test_5xx_and_timeouts_are_retried(ex, fake_exchange, exchange_hub):
    fake_exchange.fault(KLINES[ex], "http", times=2, status=502)
    assert len(exchange_hub.market_data.candles(ex, "live", "ETH/USDT", "1m", 10)) == 10
    assert [r.status for r in fake_exchange.requests_to(KLINES[ex])] == [502, 502, 200]

    fake_exchange.clear()
    hub = ExchangeHub(fast_settings(fake_exchange.url, timeout_ms=300), now_ms=lambda: fake_exchange.now_ms)
    hub.markets(ex, "live")
    fake_exchange.fault(KLINES[ex], "delay", delay=0.8)  # past the 0.3 s client timeout
    assert len(hub.market_data.candles(ex, "live", "SOL/USDT", "1m", 10)) == 10
    assert len(fake_exchange.requests_to(KLINES[ex])) == 2


def test_limit_order_rests_then_fills_when_price_crosses(fake_exchange, exchange_hub, account):
    key, secret = account("binance")
    broker = exchange_hub.broker("binance", "live", key, secret)
    price = fake_exchange.price("ETHUSDT")
    limit = (price * D("0.999")).quantize(D("0.01"))
    cid = new_client_order_id()
    placed = broker.limit_order("ETH/USDT", "buy", D("0.05"), limit, cid)
    assert placed.status == "open" and placed.amount == 0
    for _ in range(600):  # walk the replayed candles until the price dips to the limit
        fake_exchange.advance(1)
        if fake_exchange.orders(key)[0].status == "FILLED":
            break
    done = broker.find_order("ETH/USDT", cid)
    assert done.status == "filled" and done.price == limit and done.net_base == D("0.05") - D("0.00005")


@pytest.mark.parametrize("ex", EXCHANGES)
def test_revoked_trade_permission_is_not_retried(ex, fake_exchange, exchange_hub, account):
    key, secret = account(ex)
    broker = exchange_hub.broker(ex, "live", key, secret)
    assert broker.balance()  # the pooled client has authenticated successfully once
    fake_exchange.book.accounts[key].permissions = {"read"}
    with pytest.raises((AuthenticationFailed, PermissionDenied)) as err:
        broker.market_buy("BTC/USDT", D("20"), new_client_order_id())
    assert err.value.needs_user_action
    assert len(order_posts(fake_exchange, ex)) == 1


def test_cancel_resting_limit_order(fake_exchange, exchange_hub, account):
    key, secret = account("bybit")
    broker = exchange_hub.broker("bybit", "live", key, secret)
    price = (fake_exchange.price("SOLUSDT") * D("0.8")).quantize(D("0.01"))
    cid = new_client_order_id()
    assert broker.limit_order("SOL/USDT", "buy", D("1"), price, cid).status == "open"
    assert fake_exchange.balances(key)["USDT"] == D("1000") - price
    assert broker.cancel_order("SOL/USDT", cid).status == "canceled"
    assert fake_exchange.balances(key)["USDT"] == D("1000")


def test_markets_refresh_periodically_and_clients_follow(fake_exchange):
    clock = [0.0]
    hub = ExchangeHub(fast_settings(fake_exchange.url, markets_refresh_seconds=60),
                      now_ms=lambda: fake_exchange.now_ms, monotonic=lambda: clock[0])
    fake_exchange.add_account("k", "s", {"USDT": "10"}, exchange="binance")
    first = hub.private_client("binance", "live", "k", "s")
    assert first.markets is hub.markets("binance", "live")  # shared, not copied
    clock[0] += 30
    hub.markets("binance", "live")
    assert len(fake_exchange.requests_to("/api/v3/exchangeInfo")) == 1
    clock[0] += 31
    old = hub.markets("binance", "live")
    # due: the caller (a trading cycle) is served the current markets at once, the reload runs aside
    fake_exchange.latency_ms = 400
    try:
        t = time.monotonic()
        assert hub.markets("binance", "live") is old
        assert time.monotonic() - t < 0.2
        deadline = time.monotonic() + 10
        while hub.markets("binance", "live") is old and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        fake_exchange.latency_ms = 0
    fresh = hub.markets("binance", "live")
    assert fresh is not old
    assert len(fake_exchange.requests_to("/api/v3/exchangeInfo")) == 2
    assert hub.private_client("binance", "live", "k", "s").markets is fresh
