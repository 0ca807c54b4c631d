"""Symbol resolution against the markets ccxt loaded from the fake."""

import pytest

from tradebot.exchange.errors import UnknownSymbol


@pytest.mark.parametrize("ex", ["binance", "bybit"])
@pytest.mark.parametrize("text", ["btcusdt", "BTC-USDT", "btc/usdt", " BTC_USDT ", "BTCUSDT"])
def test_resolves_common_spellings(ex, text, exchange_hub):
    assert exchange_hub.resolve_symbol(ex, "live", text) == "BTC/USDT"


def test_unknown_symbol_lists_close_matches(exchange_hub):
    with pytest.raises(UnknownSymbol) as err:
        exchange_hub.resolve_symbol("binance", "live", "ETHUSTD")
    assert "ETH/USDT" in err.value.user_message and "ETHUSTD" in err.value.user_message
    with pytest.raises(UnknownSymbol, match="Unknown symbol 'DOGE/EUR'"):
        exchange_hub.resolve_symbol("bybit", "live", "doge/eur")


def test_paper_uses_the_data_network_markets(exchange_hub, fake_exchange):
    assert exchange_hub.resolve_symbol("bybit", "paper", "sol-usdt") == "SOL/USDT"
    assert exchange_hub.market_rules("bybit", "paper", "SOL/USDT").min_cost == 5
