"""Pure reply formatting."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradebot.services import PairView, StartResult, StopResult
from tradebot.telegram import format as fmt

D = Decimal


def view(symbol="BTC/USDT", budget="1000", equity="1050", trading=True, exchange="binance", status=None):
    budget, equity = D(budget), D(equity)
    pnl = equity - budget
    return PairView(
        1,
        symbol,
        exchange,
        "testnet",
        budget,
        trading,
        status or ("running" if trading else "stopped"),
        equity,
        pnl,
        pnl * 100 / budget,
    )


@pytest.mark.parametrize(
    "value, text",
    [
        ("1000", "$1000.00"),
        ("-20", "-$20.00"),
        ("0.005", "$0.01"),
        ("-0.001", "$0.00"),
        ("1234567.891", "$1234567.89"),
    ],
)
def test_money(value, text):
    assert fmt.money(D(value)) == text


def test_pnl_and_percent():
    assert fmt.pnl(D("50"), D("5")) == "$50.00 (5.00%)"
    assert fmt.pnl(D("-20"), D("-4")) == "-$20.00 (-4.00%)"
    assert fmt.percent(D("-0.001")) == "0.00%"


def test_status_single_and_multiple():
    assert fmt.status([view()]) == (
        "📊 Your Trading Pairs (1)\n1. BTC/USDT 🟢 Running\n   Balance: $1000.00 → Equity: $1050.00\n"
        "   PnL: $50.00 (5.00%)"
    )
    text = fmt.status([view(), view("ETH/USDT", "500", "480")])
    assert "   Equity: $480.00 | PnL: -$20.00 (-4.00%)" in text
    assert "(binance)" not in text
    assert "(bybit)" in fmt.status([view(), view(exchange="bybit")])


def test_list_pairs_and_results():
    assert (
        fmt.list_pairs([view(trading=False)])
        == "📊 Your Trading Pairs (1)\n1. BTC/USDT 🔴 Stopped\n   Balance: $1000.00"
    )
    assert fmt.started(StartResult(["BTC/USDT"])) == "🚀 Trading Started: BTC/USDT"
    assert fmt.started(StartResult(["A/B", "C/D", "E/F"])) == "🚀 Trading Started\n3 pairs now trading."
    assert fmt.stopped(StopResult(["ETH/USDT"])) == "⏸️ Trading Stopped: ETH/USDT"
    assert "<" not in fmt.started(StartResult([], [], [("X/Y", "<b>boom</b>")])).replace("&lt;", "")


@pytest.mark.parametrize(
    "kind, payload, expect",
    [
        (
            "trade_opened",
            {
                "symbol": "BTC/USDT",
                "exchange": "binance",
                "amount": "0.01",
                "price": "50000",
                "cost": "500",
                "fee": "0.5",
            },
            "Bought BTC/USDT (binance)",
        ),
        (
            "trade_closed",
            {
                "symbol": "BTC/USDT",
                "pnl": "-3",
                "pnl_percent": "-1.5",
                "reason": "stop_loss",
                "amount": "1",
                "price": "2",
            },
            "PnL: -$3.00 (-1.50%)",
        ),
        (
            "trade_closed",
            {"symbol": "BTC/USDT", "pnl": "3", "pnl_percent": "1", "reason": "take_profit"},
            "Take-profit",
        ),
        (
            "breaker_tripped",
            {"scope": "user", "symbol": None, "reason": "daily loss", "until": "x"},
            "all your pairs",
        ),
        ("breaker_reset", {"scope": "pair", "symbol": "ETH/USDT"}, "reset for ETH/USDT"),
        ("pair_error", {"symbol": "<b>", "message": "key revoked", "needs_action": True}, "Action needed"),
        (
            "daily_summary",
            {
                "day": "2026-01-01",
                "pairs": [{"symbol": "BTC/USDT", "equity": "1010", "pnl": "10", "trades": 2}],
                "total_equity": "1010",
                "total_pnl": "10",
            },
            "BTC/USDT: equity $1010.00, PnL $10.00, 2 trades",
        ),
        ("mystery", {}, "mystery"),
    ],
)
def test_events(kind, payload, expect):
    text = fmt.event(kind, json.dumps(payload))
    assert expect in text
    if kind == "pair_error":
        assert "&lt;b&gt;" in text  # the symbol from the payload is escaped


@pytest.mark.parametrize(
    "payload", ["", "not json", "[1,2]", json.dumps({"price": "nan", "pnl": "abc", "pairs": "x"})]
)
def test_events_never_crash_on_bad_payloads(payload):
    for kind in ("trade_opened", "trade_closed", "breaker_tripped", "pair_error", "daily_summary"):
        assert fmt.event(kind, payload)


def test_usage_and_help():
    assert fmt.usage("addpair") == (
        "Usage: <code>/addpair &lt;symbol&gt; &lt;balance&gt; [exchange]</code>\nExample: <code>/addpair BTC/USDT 1000</code>"
    )
    assert "/stopall" not in fmt.help_text(False) and "/stopall" in fmt.help_text(True)
