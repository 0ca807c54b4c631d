"""The fake exchange itself, seen through raw ccxt: wire errors map to the right ccxt exceptions."""

import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest

from tests.fixtures_exchange import fast_settings
from tradebot.exchange.clients import make_client
from tradebot.exchange.ratelimit import LimiterRegistry


def client(fake, ex, key=None, secret=None):
    c = make_client(ex, "live", fast_settings(fake.url)[ex], LimiterRegistry(), key, secret)
    c.load_markets()
    return c


@pytest.mark.parametrize("ex,path", [("binance", "/api/v3/exchangeInfo"), ("bybit", "/v5/market/instruments-info")])
def test_load_markets_is_one_request_with_real_filters(ex, path, fake_exchange):
    c = client(fake_exchange, ex)
    assert [r.path for r in fake_exchange.requests] == [path]
    btc = c.markets["BTC/USDT"]
    assert btc["limits"]["cost"]["min"] == 5 and btc["precision"]["price"] == 0.01
    assert set(c.symbols) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}


@pytest.mark.parametrize("ex", ["binance", "bybit"])
def test_klines_stop_at_the_clock(ex, fake_exchange):
    c = client(fake_exchange, ex)
    now = fake_exchange.now_ms
    rows = c.fetch_ohlcv("ETH/USDT", "1m", limit=5)
    assert rows[-1][0] == now - now % 60_000  # the candle in progress, nothing later
    assert rows[-1][1] == float(fake_exchange.price("ETHUSDT"))
    hourly = c.fetch_ohlcv("ETH/USDT", "1h", limit=3)
    assert [r[0] for r in hourly] == [now - now % 3_600_000 - k * 3_600_000 for k in (2, 1, 0)]
    fake_exchange.advance(90)
    assert c.fetch_ohlcv("ETH/USDT", "1m", limit=1)[0][0] == rows[-1][0] + 90 * 60_000


@pytest.mark.parametrize("ex", ["binance", "bybit"])
def test_wire_errors_map_to_ccxt_exceptions(ex, fake_exchange):
    fake_exchange.add_account("k", "s", {"USDT": "100"}, exchange=ex)
    c = client(fake_exchange, ex, "k", "s")
    cid = {"clientOrderId": "tb-dup"}
    with pytest.raises(ccxt.AuthenticationError):
        client(fake_exchange, ex, "k", "wrong").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        client(fake_exchange, ex, "nobody", "s").fetch_balance()
    with pytest.raises((ccxt.InvalidOrder, ccxt.BadRequest)):  # Binance -1013 NOTIONAL / Bybit 170140
        c.create_market_buy_order_with_cost("BTC/USDT", 4, {})
    with pytest.raises(ccxt.InsufficientFunds):  # -2010 balance / 170131
        c.create_market_buy_order_with_cost("BTC/USDT", 150, {})
    c.create_market_buy_order_with_cost("BTC/USDT", 20, cid)
    with pytest.raises(ccxt.InvalidOrder):  # -2010 Duplicate order sent. / 170141
        c.create_market_buy_order_with_cost("BTC/USDT", 20, cid)
    with pytest.raises(ccxt.InsufficientFunds):
        c.create_order("BTC/USDT", "market", "sell", 1, None, {})
    assert len(fake_exchange.orders("k")) == 1
    bad = [r for r in fake_exchange.requests if r.signature_ok is False]
    assert len(bad) == 1 and bad[0].api_key == "k"


def test_binance_lot_size_and_precision_codes(fake_exchange):
    fake_exchange.add_account("k", "s", {"USDT": "1000"}, exchange="binance")
    c = client(fake_exchange, "binance", "k", "s")
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):  # bypass ccxt's rounding with raw params
        c.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015"})
    with pytest.raises(ccxt.BadRequest, match="-1111"):
        c.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000010001"})


def test_fee_is_taken_from_the_received_asset(fake_exchange):
    fake_exchange.add_account("k", "s", {"USDT": "1000"}, exchange="binance")
    c = client(fake_exchange, "binance", "k", "s")
    c.create_order("ETH/USDT", "market", "buy", 0.1, None, {})
    assert fake_exchange.balances("k")["ETH"] == Decimal("0.0999")  # 0.1 - 0.1%
    with pytest.raises(ccxt.InsufficientFunds):  # selling the gross amount fails, as on the real exchange
        c.create_order("ETH/USDT", "market", "sell", 0.1, None, {})


def test_standalone_process():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.exchange", "--port", "0", "--latency-ms", "1"],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        line = proc.stdout.readline()
        assert line.startswith("fake exchange on http://127.0.0.1:")
        url = line.split(" on ")[1].strip()
        t = time.time()
        with urllib.request.urlopen(url + "/api/v3/ping", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url + "/v5/market/time", timeout=5) as resp:
            assert b'"retCode": 0' in resp.read()
        assert time.time() - t >= 0.002  # latency applied
    finally:
        proc.terminate()
        proc.wait(5)
