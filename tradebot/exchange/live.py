"""Live broker: real orders through ccxt, with client order ids, pre-send checks and safe recovery.

create_order is never blindly retried: after an ambiguous failure (timeout, reset, 5xx, 429) the order is
looked up by its client id and only resent (same id) when the exchange has no trace of it.
"""

from __future__ import annotations

import logging
import secrets
import time
from decimal import Decimal

import ccxt

from tradebot.exchange.base import Fill, MarketRules
from tradebot.exchange.errors import InvalidOrder, is_retriable, translate, with_retry
from tradebot.exchange.live_futures import FuturesOrders
from tradebot.exchange.rules import check_minimums, dec, floor_step

log = logging.getLogger(__name__)
_Q8 = Decimal("0.00000001")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_client_order_id() -> str:
    """'tb' + 30 random [A-Za-z0-9] (32 chars): valid on Binance (<= 36) and Bybit orderLinkId (<= 36)."""
    return "tb" + "".join(secrets.choice(_ID_CHARS) for _ in range(30))


STATUS = {"closed": "filled", "open": "open", "canceled": "canceled", "cancelled": "canceled",
          "expired": "canceled", "rejected": "rejected"}


def fill_from_order(order: dict, rules: MarketRules, client_order_id: str, trades: list[dict] | None = None) -> Fill:
    """Build a Fill from a ccxt order (fees from the order, or from its trades when the order lacks them)."""
    amount = dec(order.get("filled")) or Decimal(0)
    cost = dec(order.get("cost")) or Decimal(0)
    price = dec(order.get("average")) or (cost / amount if amount else dec(order.get("price")) or Decimal(0))
    if not cost and amount:
        cost = amount * price
    fees = [f for f in (order.get("fees") or ([order["fee"]] if order.get("fee") else [])) if f and f.get("cost")]
    if not fees and trades:
        fees = [f for t in trades for f in (t.get("fees") or [t.get("fee")]) if f and f.get("cost")]
    fee_by_ccy: dict[str, Decimal] = {}
    for f in fees:
        fee_by_ccy[f.get("currency")] = fee_by_ccy.get(f.get("currency"), Decimal(0)) + dec(f["cost"])
    fee_base = fee_by_ccy.pop(rules.base, Decimal(0))
    fee_quote = fee_by_ccy.pop(rules.quote, Decimal(0))
    other = bool(fee_by_ccy)  # e.g. BNB discount: not taken from the pair's assets
    side = order.get("side") or ""
    if side == "buy":
        net_base, net_quote = amount - fee_base, cost + fee_quote
    else:
        net_base, net_quote = amount + fee_base, cost - fee_quote
    fee_in_quote = fee_quote + fee_base * price + (cost * rules.taker_fee if other else Decimal(0))
    fee_ccy = rules.base if fee_base else rules.quote if fee_quote else next(iter(fee_by_ccy), None)
    fee_amount = fee_base or fee_quote or (next(iter(fee_by_ccy.values()), Decimal(0)))
    status = STATUS.get(order.get("status") or "", "open")
    if status == "open" and amount > 0:
        status = "partially_filled"  # still working: more may fill
    # canceled/expired with amount > 0 stays "canceled": final, with a partial fill to book
    return Fill(client_order_id, order.get("id"), rules.symbol, side, status, amount, cost, price, fee_amount,
                fee_ccy, net_base, net_quote, fee_in_quote, order.get("lastTradeTimestamp") or order.get("timestamp"))


class LiveBroker(FuturesOrders):
    """Orders for one account (spot here, USDT-M perpetuals in live_futures). Holds no ccxt client: it borrows one from the hub's bounded pool per call."""

    def __init__(self, hub, exchange: str, network: str, api_key: str, secret: str):
        self.hub, self.exchange, self.network = hub, exchange, network
        self._key, self._secret = api_key, secret

    def __repr__(self) -> str:  # never show the key
        return f"LiveBroker({self.exchange}, {self.network})"

    @property
    def settle_after_ms(self) -> int:
        """How long after sending an order the exchange could still book it (recvWindow + skew)."""
        return self.hub.settings[self.exchange].recv_window_ms + 1000

    def _client(self, futures: bool = False):
        return self.hub.private_client(self.exchange, self.network, self._key, self._secret, futures)

    def _read(self, fn, what: str):
        return with_retry(fn, self.hub.policy(self.exchange), self.exchange, what)

    def rules(self, symbol: str) -> MarketRules:
        return self.hub.market_rules(self.exchange, self.network, symbol)

    def balance(self) -> dict[str, Decimal]:
        """Free balances, non-zero only."""
        bal = self._read(lambda: self._client().fetch_balance(), "fetch_balance")
        return {c: dec(v) for c, v in (bal.get("free") or {}).items() if v}

    # orders ---------------------------------------------------------------------------------------------
    def market_buy(self, symbol: str, quote_amount: Decimal, client_order_id: str) -> Fill:
        rules = self.rules(symbol)
        # ccxt truncates the cost it sends (to the price precision): check the minimum on what is really sent
        quote = Decimal(self._client().cost_to_precision(symbol, float(floor_step(Decimal(quote_amount), _Q8))))
        est = floor_step(quote / self.hub.market_data.last_price(self.exchange, self.network, symbol),
                         rules.amount_step)
        check_minimums(rules, est, quote)
        params = {"clientOrderId": client_order_id}
        return self._place(symbol, rules, client_order_id,
                           lambda c: c.create_market_buy_order_with_cost(symbol, float(quote), params))

    def market_sell(self, symbol: str, base_amount: Decimal, client_order_id: str) -> Fill:
        rules = self.rules(symbol)
        amount = self._amount(symbol, base_amount)
        price = self.hub.market_data.last_price(self.exchange, self.network, symbol)
        check_minimums(rules, amount, amount * price)
        params = {"clientOrderId": client_order_id}
        return self._place(symbol, rules, client_order_id,
                           lambda c: c.create_order(symbol, "market", "sell", float(amount), None, params))

    def limit_order(self, symbol: str, side: str, base_amount: Decimal, price: Decimal, client_order_id: str) -> Fill:
        rules = self.rules(symbol)
        amount = self._amount(symbol, base_amount)
        px = Decimal(self._client().price_to_precision(symbol, float(price)))
        check_minimums(rules, amount, amount * px)
        params = {"clientOrderId": client_order_id}
        return self._place(symbol, rules, client_order_id,
                           lambda c: c.create_order(symbol, "limit", side, float(amount), float(px), params))

    def cancel_order(self, symbol: str, client_order_id: str) -> Fill | None:
        found = self._lookup(symbol, client_order_id)
        if found is None or found.get("status") != "open":
            return self._to_fill(found, symbol, client_order_id) if found else None
        try:
            self._read(lambda: self._client(":" in symbol).cancel_order(found["id"], symbol), "cancel_order")
        except Exception as exc:
            log.info("cancel %s: %s", client_order_id, type(exc).__name__)
        return self.find_order(symbol, client_order_id)

    def find_order(self, symbol: str, client_order_id: str) -> Fill | None:
        order = self._lookup(symbol, client_order_id)
        return None if order is None else self._to_fill(order, symbol, client_order_id)

    # internals ------------------------------------------------------------------------------------------
    def _amount(self, symbol: str, base_amount: Decimal) -> Decimal:
        """ccxt amount_to_precision TRUNCATES (rounds toward zero), so we never sell more than held."""
        try:
            return Decimal(self._client().amount_to_precision(symbol, float(base_amount)))
        except ccxt.InvalidOrder as exc:  # amount rounds to 0 -> ccxt raises; name the minimum instead
            rules = self.rules(symbol)
            check_minimums(rules, Decimal(0), Decimal(0))
            raise InvalidOrder(f"Amount too small for {symbol}") from exc

    def _place(self, symbol: str, rules: MarketRules, cid: str, send) -> Fill:
        policy = self.hub.policy(self.exchange)
        window = self.settle_after_ms / 1000
        for attempt in range(policy.attempts):
            sent_at = time.monotonic()
            try:
                order = send(self._client(":" in symbol))
            except Exception as exc:
                if "uplicate" in str(exc):  # we sent it before (ambiguous earlier try): the lookup finds it
                    found = self._lookup(symbol, cid)
                    if found is not None:
                        return self._to_fill(found, symbol, cid)
                if not is_retriable(exc):
                    raise translate(exc, self.exchange) from exc
                log.warning("%s order %s ambiguous (%s); looking it up", self.exchange, cid, type(exc).__name__)
                # A request still in transit could be booked until its recvWindow ends: only a lookup
                # after that can say "never booked" and make a resend safe.
                time.sleep(max(policy.delay(attempt), sent_at + window - time.monotonic()))
                found = self._lookup(symbol, cid)
                if found is not None:
                    return self._to_fill(found, symbol, cid)
                if attempt == policy.attempts - 1:
                    raise translate(exc, self.exchange) from exc
                continue  # the exchange has no trace of it: resend with the SAME client id
            return self._complete(order, symbol, rules, cid)
        raise AssertionError("unreachable")

    def _complete(self, order: dict, symbol: str, rules: MarketRules, cid: str) -> Fill:
        """Bybit's create answer holds only ids; fetch the booked order when fields are missing."""
        if order.get("filled") is None or order.get("status") is None:
            found = self._lookup(symbol, cid)
            if found is not None:
                order = found
        return self._to_fill(order, symbol, cid, rules)

    def _to_fill(self, order: dict, symbol: str, cid: str, rules: MarketRules | None = None) -> Fill:
        rules = rules or self.rules(symbol)
        trades = None
        has_fee = order.get("fee") or any(f and f.get("cost") for f in order.get("fees") or [])
        if not has_fee and (order.get("filled") or 0) > 0:
            trades = self._read(lambda: self._client(":" in symbol).fetch_my_trades(symbol,
                                                                                 params={"orderId": order["id"]}),
                                "fetch_my_trades")
        return fill_from_order(order, rules, cid, trades)

    def _lookup(self, symbol: str, cid: str) -> dict | None:
        """The order with this client id, open or finished; None when the exchange never saw it."""
        fut = ":" in symbol
        if self.exchange == "binance":
            def binance():
                try:  # ccxt sends {'clientOrderId': X} as origClientOrderId
                    return self._client(fut).fetch_order(None, symbol, {"clientOrderId": cid})
                except ccxt.OrderNotFound:
                    return None
            return self._read(binance, "fetch_order")
        # Bybit: orderLinkId must be passed explicitly (fetch_order_with_client_order_id sends the wrong key)
        for fetch in ("fetch_open_orders", "fetch_canceled_and_closed_orders"):
            orders = self._read(lambda f=fetch: getattr(self._client(fut), f)(symbol, params={"orderLinkId": cid}),
                                fetch)
            for o in orders:
                if o.get("clientOrderId") == cid:
                    return o
        return None
