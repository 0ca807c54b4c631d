"""Value formatting every reply uses: HTML escaping, money, percentages, prices."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from telebot.formatting import escape_html

CENT = Decimal("0.01")


def e(value) -> str:
    return escape_html("" if value is None else str(value))


def money(value: Decimal | None) -> str:
    """$1000.00, -$20.00."""
    if value is None:
        return "—"
    value = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):.2f}"


def percent(value: Decimal | None) -> str:
    if value is None:
        return "—"
    value = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    if value == 0:
        value = abs(value)
    return f"{value:.2f}%"


def number(value: Decimal | None) -> str:
    """Amounts and prices: plain notation, no trailing zeros."""
    if value is None:
        return "—"
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def price(value: Decimal | None) -> str:
    if value is None:
        return "—"
    value = Decimal(value)
    if abs(value) >= 1:
        return number(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    return number(value)


def pnl(value: Decimal, pct: Decimal) -> str:
    """$50.00 (5.00%) / -$20.00 (-4.00%)."""
    return f"{money(value)} ({percent(pct)})"
