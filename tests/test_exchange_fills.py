"""fill_from_order: the status the engine relies on to book an order once, when it is final."""

from __future__ import annotations

from decimal import Decimal as D

from tradebot.exchange.base import MarketRules
from tradebot.exchange.live import fill_from_order

RULES = MarketRules("BTC/USDT", "BTC", "USDT", D("0.00001"), D("0.01"), D("0.00001"), D("5"), D("0.001"))


def _order(status, filled, cost):
    return {
        "id": "1",
        "side": "buy",
        "status": status,
        "filled": filled,
        "cost": cost,
        "average": 100.0 if filled else None,
        "fees": [{"currency": "BTC", "cost": filled * 0.001}] if filled else [],
    }


def test_an_open_order_with_some_fills_is_still_working():
    fill = fill_from_order(_order("open", 0.5, 50.0), RULES, "tbx")
    assert fill.status == "partially_filled" and fill.amount == D("0.5")


def test_a_canceled_or_expired_order_with_some_fills_is_final_and_keeps_its_fill():
    for status in ("canceled", "expired"):
        fill = fill_from_order(_order(status, 0.5, 50.0), RULES, "tbx")
        assert fill.status == "canceled" and fill.amount == D("0.5")
        assert fill.net_base == D("0.5") - D("0.0005")
    assert fill_from_order(_order("closed", 1.0, 100.0), RULES, "tbx").status == "filled"
    assert fill_from_order(_order("canceled", 0, 0), RULES, "tbx").status == "canceled"
