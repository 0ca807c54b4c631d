"""Paper broker: fills simulated at a price (live market or a given one), with the exchange's rules and fees."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from tradebot.exchange.base import Fill, MarketRules
from tradebot.exchange.errors import InvalidOrder
from tradebot.exchange.futures_symbols import data_symbol
from tradebot.exchange.rules import check_minimums, floor_step

log = logging.getLogger(__name__)
FEE_DP = Decimal("0.00000001")  # exchanges book commissions to 8 dp
FUTURES_TAKER_FEE = Decimal("0.0005")  # Binance USDⓈ-M / Bybit linear regular-tier taker fee
FUTURES_FUNDING_RATE = Decimal("0.0001")  # the venues' baseline 8-hourly rate (0.01 %)


def simulate_futures_fill(rules: MarketRules, side: str, price: Decimal, client_order_id: str,
                          base_amount: Decimal, taker_fee: Decimal, timestamp: int | None = None,
                          charge_fee: bool = True) -> Fill:
    """Fill a futures market order at `price`: amount floored to the step, minimums enforced on opening
    orders, the taker fee on the notional in USDT. A liquidation (charge_fee False) settles fee-free."""
    price = Decimal(price)
    if price <= 0:
        raise InvalidOrder(f"No valid price for {rules.symbol}")
    if side not in ("buy", "sell"):
        raise InvalidOrder(f"unknown side {side!r}")
    amount = floor_step(Decimal(base_amount), rules.amount_step)
    cost = amount * price
    if charge_fee:
        check_minimums(rules, amount, cost)
    fee = (cost * taker_fee).quantize(FEE_DP) if charge_fee else Decimal(0)
    return Fill(client_order_id, None, rules.symbol, side, "filled", amount, cost, price, fee, rules.quote,
                net_base=amount, net_quote=cost, fee_quote=fee, timestamp=timestamp)


def simulate_market_fill(rules: MarketRules, side: str, price: Decimal, client_order_id: str,
                         quote_amount: Decimal | None = None, base_amount: Decimal | None = None,
                         timestamp: int | None = None) -> Fill:
    """Fill a market order at `price` as Binance/Bybit spot would: amount floored to the step, minimums
    enforced, taker fee taken from the asset RECEIVED (base on buys, quote on sells)."""
    price = Decimal(price)
    if price <= 0:
        raise InvalidOrder(f"No valid price for {rules.symbol}")
    if side == "buy":
        if quote_amount is None:
            raise InvalidOrder("a market buy needs quote_amount")
        amount = floor_step(Decimal(quote_amount) / price, rules.amount_step)
    elif side == "sell":
        if base_amount is None:
            raise InvalidOrder("a market sell needs base_amount")
        amount = floor_step(Decimal(base_amount), rules.amount_step)
    else:
        raise InvalidOrder(f"unknown side {side!r}")
    cost = amount * price
    # a buy's notional is what it offers to spend (as the exchanges check quoteOrderQty / Bybit qty)
    check_minimums(rules, amount, Decimal(quote_amount) if side == "buy" else cost)
    if side == "buy":
        fee = (amount * rules.taker_fee).quantize(FEE_DP)
        return Fill(client_order_id, None, rules.symbol, side, "filled", amount, cost, price, fee, rules.base,
                    net_base=amount - fee, net_quote=cost, fee_quote=fee * price, timestamp=timestamp)
    fee = (cost * rules.taker_fee).quantize(FEE_DP)
    return Fill(client_order_id, None, rules.symbol, side, "filled", amount, cost, price, fee, rules.quote,
                net_base=amount, net_quote=cost - fee, fee_quote=fee, timestamp=timestamp)


class PaperBroker:
    """Same interface as LiveBroker; no keys. find_order knows the fills made in this process (bounded)."""

    def __init__(self, exchange: str, rules: Callable[[str], MarketRules], price_source: Callable[[str], Decimal],
                 network: str = "paper", now_ms: Callable[[], int] | None = None, max_orders: int = 1000,
                 futures_taker_fee: Decimal = FUTURES_TAKER_FEE, funding_rate: Decimal = FUTURES_FUNDING_RATE,
                 funding_source: Callable[[str], Decimal] | None = None):
        self.exchange, self.network = exchange, network
        self.futures_taker_fee, self._funding_rate = Decimal(futures_taker_fee), Decimal(funding_rate)
        self._funding_source = funding_source  # the venue's current rate, when it can be had
        self._funding_down: dict[str, float] = {}  # symbol -> monotonic time of the last failed fetch
        self._rules, self._price, self._now = rules, price_source, now_ms
        self._orders: OrderedDict[str, Fill] = OrderedDict()
        self._max = max_orders
        self._lock = threading.Lock()

    def rules(self, symbol: str) -> MarketRules:
        if ":" in symbol:  # a perpetual: its spot market's steps and minimums, with the futures fee
            spot = self._rules(data_symbol(symbol))
            return replace(spot, symbol=symbol, taker_fee=self.futures_taker_fee)
        return self._rules(symbol)

    def futures_order(self, symbol: str, side: str, base_amount: Decimal, client_order_id: str,
                      reduce_only: bool = False, price: Decimal | None = None, liquidation: bool = False,
                      leverage: int | None = None, margin_mode: str | None = None) -> Fill:
        """A market order on a perpetual (one-way mode) at the perpetual's own last price, or at `price` for a
        liquidation, which settles at the bankruptcy price without a fee."""
        px = Decimal(price) if price is not None else self._price(symbol)
        return self._book(simulate_futures_fill(self.rules(symbol), side, px, client_order_id, base_amount,
                                                self.futures_taker_fee, self._ts(), charge_fee=not liquidation))

    def funding_rate(self, symbol: str) -> Decimal:
        """The rate paper futures book at a funding time: the venue's current rate of the perpetual, or the
        configured rate when the venue does not answer (no network, a data feed without futures)."""
        down = self._funding_down.get(symbol)
        if self._funding_source is not None and (down is None or time.monotonic() - down > 600):
            try:
                return Decimal(self._funding_source(symbol))
            except Exception as exc:  # noqa: BLE001 - any failure: the configured rate (asked again in 10 min)
                self._funding_down[symbol] = time.monotonic()
                log.info("funding rate of %s on %s unavailable (%s): booking the configured %s", symbol,
                         self.exchange, type(exc).__name__, self._funding_rate)
        return self._funding_rate

    def fill_at(self, price: Decimal) -> PaperBroker:
        """A broker that fills everything at `price` (backtests replaying a candle)."""
        return PaperBroker(self.exchange, self._rules, lambda _symbol: Decimal(price), self.network, self._now,
                           self._max, self.futures_taker_fee, self._funding_rate, self._funding_source)

    def market_buy(self, symbol: str, quote_amount: Decimal, client_order_id: str) -> Fill:
        return self._book(simulate_market_fill(self.rules(symbol), "buy", self._price(symbol), client_order_id,
                                               quote_amount=quote_amount, timestamp=self._ts()))

    def market_sell(self, symbol: str, base_amount: Decimal, client_order_id: str) -> Fill:
        return self._book(simulate_market_fill(self.rules(symbol), "sell", self._price(symbol), client_order_id,
                                               base_amount=base_amount, timestamp=self._ts()))

    def find_order(self, symbol: str, client_order_id: str) -> Fill | None:
        with self._lock:
            fill = self._orders.get(client_order_id)
        return fill if fill is not None and fill.symbol == symbol else None

    def _ts(self) -> int | None:
        return self._now() if self._now else None

    def _book(self, fill: Fill) -> Fill:
        with self._lock:
            self._orders[fill.client_order_id] = fill
            while len(self._orders) > self._max:
                self._orders.popitem(last=False)
        return fill
