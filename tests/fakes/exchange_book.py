"""Exchange-neutral state of the fake exchange: clock, accounts, orders, fills.

Protocol modules (exchange_binance, exchange_bybit) translate wire requests into calls here and
`Reject` reasons into each exchange's real error codes.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from tests.fakes.exchange_data import MINUTE, Series, Spec

FEE_RATE = Decimal("0.001")
FEE_DP = Decimal("0.00000001")  # commission precision (8 dp on both exchanges)


class Reject(Exception):
    """An order refused by the matching engine; `reason` is mapped to wire codes by the protocol."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason = reason  # unknown_symbol precision lot_size min_qty notional price_filter insufficient duplicate
        self.detail = detail


@dataclass
class Account:
    api_key: str
    secret: str
    exchange: str
    permissions: set[str]  # subset of {"read", "trade"}
    free: dict[str, Decimal]
    locked: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Trade:
    id: int
    order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal
    fee_asset: str
    time: int
    is_maker: bool


@dataclass
class Order:
    id: str
    exchange: str
    api_key: str
    symbol: str
    client_id: str
    side: str  # buy | sell
    type: str  # market | limit
    qty: Decimal | None  # base; None for a market buy by quote
    quote_qty: Decimal | None
    price: Decimal | None
    created: int
    status: str = "NEW"  # NEW FILLED CANCELED (Binance spelling; Bybit maps it)
    filled: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    updated: int = 0
    trades: list[Trade] = field(default_factory=list)


def decimals_of(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def too_precise(value: Decimal, step: Decimal) -> bool:
    return max(0, -value.normalize().as_tuple().exponent) > decimals_of(step)


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


class Book:
    """Everything the fake exchange knows; one lock guards it all (tests are not high-throughput)."""

    def __init__(self, series: dict[str, Series], specs: dict[str, dict[str, Spec]], now_ms: int):
        self.series = series  # exchange symbol id -> candles
        self.specs = specs  # exchange name -> symbol id -> spec
        self.now_ms = now_ms
        self.accounts: dict[str, Account] = {}
        self.orders: list[Order] = []
        self.lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self._trade_ids = itertools.count(5_000_001)
        self.depth_bias: dict[str, Decimal] = {}  # symbol id -> bid size / ask size of the synthetic order book
        # current funding rate of each symbol's USDT-M perpetual (Binance premiumIndex, Bybit linear tickers)
        self.funding_rates: dict[str, Decimal] = {}
        self.default_funding_rate = Decimal("0.0001")
        self.open_interests: dict[str, Decimal] = {}  # symbol id -> open interest of its perpetual (base units)
        # the USDT-M perpetual of a symbol trades at the spot candles + `perp_basis` (its klines, last price and
        # fills); its mark price is that last price + `mark_premium` (positions, funding, the mark endpoints)
        self.perp_basis: dict[str, Decimal] = {}
        self.mark_premium: dict[str, Decimal] = {}

    def open_interest(self, symbol_id: str) -> Decimal:
        return self.open_interests.get(symbol_id, Decimal("12345.678"))

    # clock and prices -------------------------------------------------------------------------------
    def set_time(self, ms: int) -> None:
        with self.lock:
            old, self.now_ms = self.now_ms, ms
            self._match_limits(old, ms)

    def candle_at(self, symbol_id: str, ts: int) -> tuple[str, str, str, str, str] | None:
        s = self.series[symbol_id]
        i = s.index(ts)
        if 0 <= i < len(s):
            return s.o[i], s.h[i], s.l[i], s.c[i], s.v[i]
        return None

    def depth(self, symbol_id: str, levels: int) -> tuple[list, list]:
        """A synthetic order book around the current price: 0.01 % per level, 1 unit per ask level and
        `depth_bias` units per bid level (set it to tilt the book)."""
        px = self.price(symbol_id)
        bias = self.depth_bias.get(symbol_id, Decimal(1))
        step = px / Decimal(10000)
        bids = [[str(px - step * (k + 1)), str(bias)] for k in range(levels)]
        asks = [[str(px + step * (k + 1)), "1"] for k in range(levels)]
        return bids, asks

    def price(self, symbol_id: str) -> Decimal:
        """The current price: the open of the candle the clock is in."""
        s = self.series[symbol_id]
        i = min(max(s.index(self.now_ms), 0), len(s) - 1)
        return Decimal(s.o[i])

    def perp_price(self, symbol_id: str) -> Decimal:
        """The perpetual's last traded price (what its market orders fill at)."""
        return self.price(symbol_id) + self.perp_basis.get(symbol_id, Decimal(0))

    def mark_price(self, symbol_id: str) -> Decimal:
        """The perpetual's mark price: unrealized PnL, liquidation and funding are computed at it."""
        return self.perp_price(symbol_id) + self.mark_premium.get(symbol_id, Decimal(0))

    def perp_klines(self, symbol_id: str, tf_ms: int, limit: int, start: int | None, end: int | None) -> list[tuple]:
        """The perpetual's own bars: the spot bars shifted by its basis."""
        basis = self.perp_basis.get(symbol_id, Decimal(0))
        if not basis:
            return self.klines(symbol_id, tf_ms, limit, start, end)
        return [(t, *(str(Decimal(x) + basis) for x in (o, h, lo, c)), v)
                for t, o, h, lo, c, v in self.klines(symbol_id, tf_ms, limit, start, end)]

    def klines(self, symbol_id: str, tf_ms: int, limit: int, start: int | None, end: int | None) -> list[tuple]:
        """Bars of `tf_ms` up to the clock, oldest first; the last one may be in progress (partial)."""
        s = self.series[symbol_id]
        now = self.now_ms
        last_open = now - (now % tf_ms)
        if end is not None:
            last_open = min(last_open, end - (end % tf_ms))
        first_open = last_open - (limit - 1) * tf_ms
        if start is not None:
            first_open = max(first_open, start + (-start % tf_ms))
            last_open = min(last_open, first_open + (limit - 1) * tf_ms)
        first_open = max(first_open, s.start - (s.start % tf_ms))
        out = []
        for t in range(first_open, last_open + 1, tf_ms):
            # only 1m bars that closed before the clock count, so a partial bar never leaks the future
            bar = self._aggregate(s, t, min(t + tf_ms, now - now % MINUTE))
            if bar:
                out.append((t, *bar))
        return out

    @staticmethod
    def _aggregate(s: Series, t0: int, t1: int):
        i0, i1 = max(s.index(t0), 0), min(s.index(t1 - 1) + 1, len(s))
        if i1 <= i0:  # candle just opened: only its open is known
            i = s.index(t0)
            if 0 <= i < len(s):
                o = s.o[i]
                return o, o, o, o, "0"
            return None
        hs, ls = s.h[i0:i1], s.l[i0:i1]
        vol = sum((Decimal(v) for v in s.v[i0:i1]), Decimal(0))
        return s.o[i0], max(hs, key=Decimal), min(ls, key=Decimal), s.c[i1 - 1], str(vol)

    # accounts ------------------------------------------------------------------------------------------
    def add_account(self, acct: Account) -> None:
        with self.lock:
            self.accounts[acct.api_key] = acct

    def spec(self, exchange: str, symbol_id: str) -> Spec:
        spec = self.specs[exchange].get(symbol_id)
        if spec is None:
            raise Reject("unknown_symbol", symbol_id)
        return spec

    # orders --------------------------------------------------------------------------------------------
    def find(self, api_key: str, order_id: str | None = None, client_id: str | None = None) -> Order | None:
        with self.lock:
            for o in reversed(self.orders):
                if o.api_key == api_key and (
                    (order_id is not None and o.id == str(order_id)) or (client_id is not None and o.client_id == client_id)
                ):
                    return o
        return None

    def place(self, acct: Account, symbol_id: str, side: str, type_: str, qty: Decimal | None,
              quote_qty: Decimal | None, price: Decimal | None, client_id: str) -> Order:
        with self.lock:
            spec = self.spec(acct.exchange, symbol_id)
            # Stricter than the real exchanges (open orders only): a client id is never reused per account,
            # so a test catches any double send.
            if client_id and any(o.api_key == acct.api_key and o.client_id == client_id for o in self.orders):
                raise Reject("duplicate", client_id)
            mkt = self.price(symbol_id)
            if type_ == "limit":
                if price is None or qty is None:
                    raise Reject("bad_param", "price")
                if too_precise(price, spec.tick) or price % spec.tick:
                    raise Reject("price_filter", str(price))
            if qty is not None:
                if too_precise(qty, Decimal("0.00000001")):
                    raise Reject("precision", "quantity")
                if qty % spec.step:
                    raise Reject("lot_size", str(qty))
                if qty < spec.min_qty or qty > spec.max_qty:
                    raise Reject("min_qty", str(qty))
                notional = qty * (price if type_ == "limit" else mkt)
            else:  # market buy spending quote
                if quote_qty is None or quote_qty <= 0:
                    raise Reject("bad_param", "quoteOrderQty")
                if too_precise(quote_qty, spec.quote_step):
                    raise Reject("quote_precision", str(quote_qty))
                notional = quote_qty
                if floor_to(quote_qty / mkt, spec.step) < spec.min_qty:
                    raise Reject("min_qty", "quote")
            if notional < spec.min_notional:
                raise Reject("notional", str(notional))
            need_asset, need = (spec.quote, notional) if side == "buy" else (spec.base, qty)
            if acct.free.get(need_asset, Decimal(0)) < need:
                raise Reject("insufficient", need_asset)
            order = Order(str(next(self._ids)), acct.exchange, acct.api_key, symbol_id, client_id, side, type_,
                          qty, quote_qty, price, self.now_ms, updated=self.now_ms)
            self.orders.append(order)
            crosses = type_ == "market" or (side == "buy" and price >= mkt) or (side == "sell" and price <= mkt)
            if crosses:
                base = qty if qty is not None else floor_to(quote_qty / mkt, spec.step)
                self._fill(acct, spec, order, base, mkt, maker=False)
            else:
                self._lock_funds(acct, need_asset, need)
            return order

    def cancel(self, order: Order) -> None:
        with self.lock:
            if order.status != "NEW":
                raise Reject("not_open", order.id)
            acct = self.accounts[order.api_key]
            spec = self.spec(order.exchange, order.symbol)
            asset, amount = (spec.quote, order.qty * order.price) if order.side == "buy" else (spec.base, order.qty)
            self._lock_funds(acct, asset, -amount)
            order.status, order.updated = "CANCELED", self.now_ms

    @staticmethod
    def _lock_funds(acct: Account, asset: str, amount: Decimal) -> None:
        acct.free[asset] = acct.free.get(asset, Decimal(0)) - amount
        acct.locked[asset] = acct.locked.get(asset, Decimal(0)) + amount

    def _fill(self, acct: Account, spec: Spec, order: Order, base: Decimal, price: Decimal, maker: bool) -> None:
        quote = base * price
        # Fee comes out of the asset received (GUIDE section 3): base on buys, quote on sells.
        if order.side == "buy":
            fee, fee_asset = (base * FEE_RATE).quantize(FEE_DP), spec.base
            acct.free[spec.quote] = acct.free.get(spec.quote, Decimal(0)) - quote
            acct.free[spec.base] = acct.free.get(spec.base, Decimal(0)) + base - fee
        else:
            fee, fee_asset = (quote * FEE_RATE).quantize(FEE_DP), spec.quote
            acct.free[spec.base] = acct.free.get(spec.base, Decimal(0)) - base
            acct.free[spec.quote] = acct.free.get(spec.quote, Decimal(0)) + quote - fee
        trade = Trade(next(self._trade_ids), order.id, order.symbol, order.side, price, base, quote, fee, fee_asset,
                      self.now_ms, maker)
        order.trades.append(trade)
        order.filled += base
        order.cum_quote += quote
        order.fee += fee
        order.fee_asset = fee_asset
        order.status, order.updated = "FILLED", self.now_ms

    def _match_limits(self, old: int, new: int) -> None:
        """Fill resting limit orders whose price was crossed by a bar between the two clock readings."""
        for order in self.orders:
            if order.status != "NEW" or order.type != "limit":
                continue
            s = self.series[order.symbol]
            for i in range(max(s.index(old), 0), min(s.index(new) + 1, len(s))):
                crossed = Decimal(s.l[i]) <= order.price if order.side == "buy" else Decimal(s.h[i]) >= order.price
                if crossed:
                    acct = self.accounts[order.api_key]
                    spec = self.spec(order.exchange, order.symbol)
                    asset, amount = (spec.quote, order.qty * order.price) if order.side == "buy" else (spec.base, order.qty)
                    self._lock_funds(acct, asset, -amount)  # unlock, then settle from free
                    self._fill(acct, spec, order, order.qty, order.price, maker=True)
                    break
