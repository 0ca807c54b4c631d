"""Market fills for the backtester: exactly the paper broker's fill rules, fees and precision
(`exchange.paper.simulate_market_fill`): fill at the given price (no spread, no slippage), amount
floored to the exchange's step, minimums enforced, taker fee taken from the asset received
(base on buys, quote on sells), fees booked to 8 decimals."""

from __future__ import annotations

from decimal import Decimal

from ..exchange.base import Fill, MarketRules
from ..exchange.errors import ExchangeError
from ..exchange.paper import simulate_futures_fill, simulate_market_fill

SOURCE = "exchange.paper.simulate_market_fill"
FUTURES_SOURCE = "exchange.paper.simulate_futures_fill"


def market_fill(rules: MarketRules, side: str, price: Decimal, quote_amount: Decimal | None,
                base_amount: Decimal | None, client_order_id: str, timestamp: int | None) -> Fill | str:
    """The Fill, or the exchange's refusal message (e.g. below the minimum notional) as a string."""
    try:
        fill = simulate_market_fill(rules, side, price, client_order_id, quote_amount=quote_amount,
                                    base_amount=base_amount, timestamp=timestamp)
    except ExchangeError as e:
        return getattr(e, "user_message", None) or str(e)
    if fill.amount <= 0 or fill.net_base <= 0:
        # the amount floors to zero at the step (tiny budget, no --set min_cost): an exchange refuses
        # a zero quantity, and booking it would open a position without an entry price
        return f"order amount rounds down to 0 at the amount step {rules.amount_step}"
    return fill


def futures_fill(rules: MarketRules, order, price: Decimal, client_order_id: str, timestamp: int | None) -> Fill | str:
    """A perpetual's market fill as paper futures make it (`simulate_futures_fill`): the taker fee on the
    notional in quote; a liquidation settles at its price without a fee."""
    try:
        fill = simulate_futures_fill(rules, order.side, price, client_order_id, order.base_amount, rules.taker_fee,
                                     timestamp, charge_fee=order.reason != "liquidation")
    except ExchangeError as e:
        return getattr(e, "user_message", None) or str(e)
    if fill.amount <= 0:
        return f"order amount rounds down to 0 at the amount step {rules.amount_step}"
    return fill
