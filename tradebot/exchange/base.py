"""Contracts of the exchange layer: what the engine sees of any broker."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Fill:
    """Result of an order as the exchange reports it (or as the paper broker simulates it)."""

    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: str  # buy | sell
    # filled | partially_filled (still open, more may fill) | open | canceled (final; amount > 0 when it was
    # partly filled before the cancel/expiry) | rejected
    status: str
    amount: Decimal  # gross base amount filled
    cost: Decimal  # gross quote amount filled
    price: Decimal  # average fill price
    fee: Decimal  # fee amount, in fee_currency
    fee_currency: str | None
    net_base: Decimal  # base actually received (buy) or given up (sell)
    net_quote: Decimal  # quote actually spent (buy, positive) or received (sell)
    fee_quote: Decimal  # the fee valued in quote currency
    timestamp: int | None = None  # ms


@dataclass(frozen=True, slots=True)
class MarketRules:
    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None
    price_tick: Decimal | None
    min_amount: Decimal | None
    min_cost: Decimal | None  # min notional
    taker_fee: Decimal  # rate, e.g. 0.001


class Broker(Protocol):
    """Orders for one (exchange, network, account). Paper and live share it."""

    exchange: str
    network: str  # testnet | live | paper

    def rules(self, symbol: str) -> MarketRules: ...

    def market_buy(self, symbol: str, quote_amount: Decimal, client_order_id: str) -> Fill:
        """Spend `quote_amount` of quote currency. Raises exchange.errors types."""

    def market_sell(self, symbol: str, base_amount: Decimal, client_order_id: str) -> Fill:
        """Sell `base_amount` of base currency (rounded DOWN to the step)."""

    def find_order(self, symbol: str, client_order_id: str) -> Fill | None:
        """Look an order up by client id (open and history); None if the exchange never saw it."""
