"""Market rules from ccxt markets, symbol resolution, and the pre-send minimum checks."""

from __future__ import annotations

import difflib
from decimal import ROUND_DOWN, Decimal

from tradebot.exchange.base import MarketRules
from tradebot.exchange.errors import BelowMinimum, UnknownSymbol

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL")


def dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def rules_from_market(market: dict) -> MarketRules:
    limits, precision = market.get("limits") or {}, market.get("precision") or {}
    return MarketRules(
        symbol=market["symbol"], base=market["base"], quote=market["quote"],
        amount_step=dec(precision.get("amount")), price_tick=dec(precision.get("price")),
        min_amount=dec((limits.get("amount") or {}).get("min")),
        min_cost=dec((limits.get("cost") or {}).get("min")),
        taker_fee=dec(market.get("taker")) or Decimal("0.001"),
    )


def floor_step(value: Decimal, step: Decimal | None) -> Decimal:
    if not step:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def fmt(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros, money-style (>= 2 dp)."""
    text = format(value.normalize(), "f")
    if "." not in text:
        return text
    whole, frac = text.split(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def check_minimums(rules: MarketRules, amount: Decimal, cost: Decimal) -> None:
    """ccxt does not enforce limits.amount.min / limits.cost.min: refuse before sending, naming the minimum."""
    if rules.min_amount is not None and amount < rules.min_amount:
        raise BelowMinimum(f"Order amount {format(amount.normalize(), 'f')} {rules.base} is below the exchange "
                           f"minimum of {format(rules.min_amount.normalize(), 'f')} {rules.base} for {rules.symbol}")
    if rules.min_cost is not None and cost < rules.min_cost:
        raise BelowMinimum(f"Order value {cost.quantize(Decimal('0.01'), ROUND_DOWN)} {rules.quote} is below the "
                           f"exchange minimum of {fmt(rules.min_cost).removesuffix('.00')} {rules.quote} for {rules.symbol}")


def resolve_symbol(markets: dict, text: str, exchange: str = "") -> str:
    """'btcusdt', 'BTC-USDT', 'btc/usdt' -> 'BTC/USDT' among active spot markets; else UnknownSymbol with hints."""
    spot = {s: m for s, m in markets.items() if m.get("spot") and m.get("active") is not False}
    raw = (text or "").strip().upper()
    cand = raw
    for sep in ("-", "_", " ", ":"):
        cand = cand.replace(sep, "/")
    if cand in spot:
        return cand
    flat = cand.replace("/", "")
    by_id = {m["id"].upper(): s for s, m in spot.items()}
    if flat in by_id:
        return by_id[flat]
    for q in QUOTES:
        if flat.endswith(q) and f"{flat[: -len(q)]}/{q}" in spot:
            return f"{flat[: -len(q)]}/{q}"
    close = difflib.get_close_matches(cand if "/" in cand else flat, list(spot) + list(by_id), n=5, cutoff=0.6)
    hints = list(dict.fromkeys(by_id.get(c, c) for c in close))
    where = f" on {exchange.capitalize()}" if exchange else ""
    msg = f"Unknown symbol '{raw}'{where}."
    if hints:
        msg += " Did you mean: " + ", ".join(hints) + "?"
    raise UnknownSymbol(msg)
