"""Parsing of chat input."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebot.telegram import parsing as p


def test_split_command():
    assert p.split_command("/AddPair@MyBot btc 100") == ("addpair", "MyBot", ["btc", "100"])
    for bad in ("hello", "", "/", "/bad-name", "/x" + "y" * 40):
        with pytest.raises(p.ParseError):
            p.split_command(bad)
    with pytest.raises(p.ParseError, match="too long"):
        p.split_command("/status " + "x" * 2000)


@pytest.mark.parametrize(
    "text", ["-5", "0", "1e309", "nan", "inf", "1,000", "", "abc", "1.123456789", "0x10"]
)
def test_amounts_refused(text):
    with pytest.raises(p.ParseError):
        p.parse_amount(text, "Balance")


def test_amounts_accepted():
    assert p.parse_amount("1000") == Decimal("1000")
    assert p.parse_amount("$250.50") == Decimal("250.50")
    assert p.parse_number("0", "cooldown", Decimal(0), Decimal(10), integer=True) == 0


@pytest.mark.parametrize(
    "text, symbol",
    [
        ("btcusdt", "BTC/USDT"),
        ("BTC-USDT", "BTC/USDT"),
        ("btc/usdt", "BTC/USDT"),
        ("ethbtc", "ETH/BTC"),
        ("sol_usdc", "SOL/USDC"),
    ],
)
def test_normalize_symbol(text, symbol):
    assert p.normalize_symbol(text) == symbol
    assert p.symbol_key(text) == symbol.replace("/", "")


def test_networks_and_flags():
    assert [p.parse_network(w) for w in ("true", "false", "TESTNET", "live", "paper")] == [
        "testnet",
        "live",
        "testnet",
        "live",
        "paper",
    ]
    with pytest.raises(p.ParseError):
        p.parse_network("maybe")
    assert p.parse_on_off("ON") is True and p.parse_on_off("off") is False
    assert p.parse_user_ref("@bob_1") == "bob_1" and p.parse_user_ref("123") == 123


@given(st.text(max_size=300))
def test_parsers_only_raise_parse_error(text):
    for fn in (
        p.split_command,
        p.parse_amount,
        p.normalize_symbol,
        p.check_symbol_text,
        p.parse_exchange,
        p.parse_network,
        p.parse_on_off,
        p.parse_user_ref,
    ):
        try:
            fn(text)
        except p.ParseError:
            pass
    try:
        value = p.parse_amount(text)
        assert value.is_finite() and value > 0
    except p.ParseError:
        pass
