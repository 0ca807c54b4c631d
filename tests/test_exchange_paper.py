"""Paper broker over replayed candles, and the pure fill function the backtester shares."""

import csv
import gzip
from decimal import ROUND_DOWN
from decimal import Decimal as D

import pytest

from tests.fakes.exchange_data import DATA_DIR, SERIES_FILES
from tradebot.exchange.base import MarketRules
from tradebot.exchange.errors import BelowMinimum
from tradebot.exchange.paper import PaperBroker, simulate_market_fill

BTC = MarketRules("BTC/USDT", "BTC", "USDT", D("0.00001"), D("0.01"), D("0.00001"), D("5"), D("0.001"))


def csv_open(row: int) -> D:
    path = DATA_DIR / SERIES_FILES["BTCUSDT"]
    with gzip.open(path, "rt") as fh:
        rows = list(csv.reader(fh))
    return D(rows[1 + row][1])


def test_buy_then_sell_over_replayed_candles_pnl_by_hand(fake_exchange, exchange_hub):
    broker = exchange_hub.broker("binance", "paper")  # public data from the fake's "live" network, no key
    # the fake's clock starts in candle 500 (2023-01-01 08:20 UTC); its open is the price
    buy = broker.market_buy("BTC/USDT", D("100"), "tb-paper-1")
    fake_exchange.advance(120)  # 10:20 UTC
    exchange_hub.market_data.ticker_ttl_ms = 0
    sell = broker.market_sell("BTC/USDT", buy.net_base, "tb-paper-2")

    # by hand, from the CSV: 08:20 open 16523.87, 10:20 open 16541.94, taker 0.1%, step 0.00001
    p1, p2 = csv_open(500), csv_open(620)
    assert (p1, p2) == (D("16523.87"), D("16541.94"))
    bought = (D(100) / p1).quantize(D("0.00001"), ROUND_DOWN)  # 0.00605 BTC
    buy_fee = D("0.00000605")  # 0.1% of 0.00605 BTC, in BTC
    held = bought - buy_fee  # 0.00604395
    sold = D("0.00604")  # held rounded down to the step
    proceeds = sold * p2  # 99.9133176
    sell_fee = D("0.09991332")  # 0.1% of the proceeds, in USDT (8 dp)
    assert (buy.amount, buy.fee, buy.net_base, buy.cost) == (bought, buy_fee, held, bought * p1)
    assert (sell.amount, sell.fee, sell.net_quote) == (sold, sell_fee, proceeds - sell_fee)
    pnl = sell.net_quote - buy.net_quote
    assert pnl == proceeds - sell_fee - bought * p1 == D("-0.15600922")
    assert buy.fee_quote + sell.fee_quote == buy_fee * p1 + sell_fee

    assert broker.find_order("BTC/USDT", "tb-paper-1") == buy
    assert broker.find_order("BTC/USDT", "never-sent") is None
    assert fake_exchange.orders() == [] and all(r.signature_ok is None for r in fake_exchange.requests)


def test_paper_applies_minimums_and_fills_at_given_price():
    broker = PaperBroker("binance", lambda s: BTC, lambda s: D("20000"))
    with pytest.raises(BelowMinimum, match="minimum of 5 USDT"):
        broker.market_buy("BTC/USDT", D("4.99"), "a")
    at = broker.fill_at(D("25000"))
    fill = at.market_sell("BTC/USDT", D("0.0012345"), "b")
    assert (fill.amount, fill.price, fill.cost, fill.fee) == (D("0.00123"), D("25000"), D("30.75"), D("0.03075"))
    assert fill.net_quote == D("30.71925") and fill.net_base == D("0.00123")


def test_simulate_market_fill_buy_fee_in_base():
    fill = simulate_market_fill(BTC, "buy", D("30000"), "c", quote_amount=D("60"))
    assert fill.amount == D("0.002") and fill.fee == D("0.000002") and fill.fee_currency == "BTC"
    assert fill.net_base == D("0.001998") and fill.net_quote == D("60.000") and fill.fee_quote == D("0.06")
    with pytest.raises(BelowMinimum, match="below the exchange minimum of 0.00001 BTC for BTC/USDT"):
        simulate_market_fill(BTC, "sell", D("30000"), "d", base_amount=D("0.000009"))
