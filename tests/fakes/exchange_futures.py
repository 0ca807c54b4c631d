"""USDT-M linear perpetuals of the fake exchange (one-way mode): wallets, positions, market orders.

Exchange-neutral like exchange_book; exchange_binance_futures maps it onto /fapi and `Reject` reasons onto
Binance's codes (insufficient margin -2019, reduce-only -2022). Fills happen at the perpetual's current price (the
open of the candle the clock is in + `book.perp_basis`), taker fee 0.05 % of the notional in USDT, realized PnL
paid into the wallet; positions are valued and funded at the mark price (+ `book.mark_premium`).
Tests change a position behind the bot's back with `close_externally` (a manual close, a liquidation or ADL),
with a fill in the account's trade history or, as a liquidation the venue reports without one, none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tests.fakes.exchange_book import FEE_DP, Book, Order, Reject, Trade, too_precise

TAKER_FEE = Decimal("0.0005")
FUNDING_MS = 8 * 3_600_000  # 00:00, 08:00, 16:00 UTC
ZERO = Decimal(0)


@dataclass
class Position:
    qty: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry: Decimal = ZERO
    leverage: int = 20  # the venues' default before anyone sets it
    margin_type: str = "CROSSED"
    updated: int = 0


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement of a position: `amount` is signed as the venues report it (- paid, + received)."""

    id: int
    symbol: str
    time: int
    rate: Decimal
    amount: Decimal


@dataclass
class FuturesAccount:
    wallet: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    hedge_mode: bool = False
    margin_mode: str = "CROSSED"  # a Bybit unified account's mode (account-wide)
    enabled: bool = True  # False: the API key lacks the futures permission
    funding: list[FundingPayment] = field(default_factory=list)


def acct_exchange(book: Book, api_key: str) -> str:
    acct = book.accounts.get(api_key)
    return acct.exchange if acct is not None else "binance"


class Futures:
    def __init__(self, book: Book):
        self.book = book
        self.accounts: dict[str, FuturesAccount] = {}
        self.orders: list[Order] = []
        self.realized: dict[str, Decimal] = {}  # order id -> realized PnL of its fill
        self.funded_until = book.now_ms - book.now_ms % FUNDING_MS  # funding times up to here are settled
        self.report_delay_ms = 0  # a settled payment shows in the funding history only this long after its time
        self._funding_ids = 0

    def settle_funding(self) -> None:
        """Settle every funding time passed since the last request: each open position pays (long, positive
        rate) or receives notional at the mark x the symbol's rate, into the wallet. Called before every
        request is handled, so a position changed by a request is settled as it stood at the funding time."""
        now = self.book.now_ms
        while self.funded_until + FUNDING_MS <= now:
            self.funded_until += FUNDING_MS
            ft = self.funded_until
            for acct in self.accounts.values():
                for sym, pos in acct.positions.items():
                    if not pos.qty:
                        continue
                    rate = self.book.funding_rates.get(sym, self.book.default_funding_rate)
                    candle = self.book.candle_at(sym, ft)
                    mark = (Decimal(candle[0]) + self.mark(sym) - self.book.price(sym)) if candle else self.mark(sym)
                    amount = (-pos.qty * mark * rate).quantize(FEE_DP)
                    self._funding_ids += 1
                    acct.funding.append(FundingPayment(self._funding_ids, sym, ft, rate, amount))
                    acct.wallet += amount

    def reported(self, acct: FuturesAccount) -> list[FundingPayment]:
        """The payments the funding history shows by now (oldest first)."""
        return [f for f in acct.funding if f.time + self.report_delay_ms <= self.book.now_ms]

    def add_account(self, api_key: str, usdt: str | Decimal, enabled: bool = True) -> FuturesAccount:
        acct = self.accounts[api_key] = FuturesAccount(Decimal(usdt), enabled=enabled)
        return acct

    def position(self, api_key: str, symbol: str) -> Position:
        acct = self.accounts[api_key]
        return acct.positions.setdefault(symbol, Position(margin_type=acct.margin_mode))

    def mark(self, symbol: str) -> Decimal:
        return self.book.mark_price(symbol)

    def used_margin(self, acct: FuturesAccount) -> Decimal:
        return sum((abs(p.qty) * p.entry / p.leverage for p in acct.positions.values()), ZERO)

    def unrealized(self, acct: FuturesAccount) -> Decimal:
        return sum(((self.mark(s) - p.entry) * p.qty for s, p in acct.positions.items() if p.qty), ZERO)

    def available(self, acct: FuturesAccount) -> Decimal:
        return acct.wallet + min(self.unrealized(acct), ZERO) - self.used_margin(acct)

    def set_leverage(self, api_key: str, symbol: str, leverage: int) -> None:
        if not 1 <= leverage <= 125:
            raise Reject("bad_leverage", str(leverage))
        with self.book.lock:
            self.position(api_key, symbol).leverage = leverage

    def set_margin_type(self, api_key: str, symbol: str, margin_type: str) -> None:
        with self.book.lock:
            pos = self.position(api_key, symbol)
            if pos.margin_type == margin_type:
                raise Reject("margin_type_same", margin_type)
            if pos.qty:
                raise Reject("margin_type_open_position", margin_type)
            pos.margin_type = margin_type

    def set_hedge_mode(self, api_key: str, hedged: bool) -> None:
        with self.book.lock:
            acct = self.accounts[api_key]
            if acct.hedge_mode == hedged:
                raise Reject("position_side_same", str(hedged))
            acct.hedge_mode = hedged

    def place(self, api_key: str, exchange: str, symbol: str, side: str, qty: Decimal, client_id: str,
              reduce_only: bool) -> Order:
        with self.book.lock:
            spec = self.book.spec(exchange, symbol)
            acct = self.accounts[api_key]
            # as in the spot book: a client id is never reused per account, so a test catches any double send
            if client_id and any(o.api_key == api_key and o.client_id == client_id for o in self.orders):
                raise Reject("duplicate", client_id)
            if too_precise(qty, spec.step) or qty % spec.step:
                raise Reject("lot_size", str(qty))
            if qty < spec.min_qty or qty > spec.max_qty:
                raise Reject("min_qty", str(qty))
            pos = self.position(api_key, symbol)
            px = self.book.perp_price(symbol)
            signed = qty if side == "buy" else -qty
            if reduce_only and (pos.qty == 0 or (pos.qty > 0) == (signed > 0) or qty > abs(pos.qty)):
                raise Reject("reduce_only", symbol)
            closing = pos.qty != 0 and (pos.qty > 0) != (signed > 0)
            opened = qty - min(qty, abs(pos.qty)) if closing else qty
            if opened and opened * px < spec.min_notional:
                raise Reject("notional", str(opened * px))
            fee = (qty * px * TAKER_FEE).quantize(FEE_DP)
            if opened and opened * px / pos.leverage + fee > self.available(acct):
                raise Reject("insufficient_margin", symbol)
            now = self.book.now_ms
            order = Order(str(next(self.book._ids)), exchange, api_key, symbol, client_id, side, "market", qty, None,
                          None, now, updated=now)
            realized = ZERO
            if closing:
                closed = min(qty, abs(pos.qty))
                realized = (px - pos.entry) * closed * (1 if pos.qty > 0 else -1)
                pos.qty += closed if pos.qty < 0 else -closed
                if pos.qty == 0:
                    pos.entry = ZERO
            if opened:
                new = abs(pos.qty) + opened
                pos.entry = (pos.entry * abs(pos.qty) + px * opened) / new
                pos.qty = new if signed > 0 else -new
            pos.updated = now
            acct.wallet += realized - fee
            self.realized[order.id] = realized
            order.trades.append(Trade(next(self.book._trade_ids), order.id, symbol, side, px, qty, qty * px, fee,
                                      spec.quote, now, False))
            order.filled, order.cum_quote, order.fee, order.fee_asset = qty, qty * px, fee, spec.quote
            order.status = "FILLED"
            self.orders.append(order)
            return order

    def close_externally(self, api_key: str, symbol: str, price: Decimal | None = None, fee: bool = True,
                         fill: bool = True, qty: Decimal | None = None) -> Decimal:
        """Close a position outside the bot (a manual close, or a liquidation at `price`), `qty` of it (default
        all): -> realized PnL. With `fill`, the close is in the account's trade history (userTrades, execution
        list) like any order's fill; without, it is not (a liquidation reported without a fill)."""
        with self.book.lock:
            acct, pos = self.accounts[api_key], self.position(api_key, symbol)
            px = Decimal(price) if price is not None else self.book.perp_price(symbol)
            closed = abs(pos.qty) if qty is None else Decimal(qty)
            sign = 1 if pos.qty > 0 else -1
            pnl = (px - pos.entry) * closed * sign
            cost = (closed * px * TAKER_FEE).quantize(FEE_DP) if fee else ZERO
            acct.wallet += pnl - cost
            now = self.book.now_ms
            if fill:
                side = "sell" if sign > 0 else "buy"
                oid = str(next(self.book._ids))
                order = Order(oid, acct_exchange(self.book, api_key), api_key, symbol, f"web_{oid}", side, "market",
                              closed, None, None, now, updated=now)
                order.trades.append(Trade(next(self.book._trade_ids), oid, symbol, side, px, closed, closed * px, cost,
                                          "USDT", now, False))
                order.filled, order.cum_quote, order.fee, order.fee_asset = closed, closed * px, cost, "USDT"
                order.status = "FILLED"
                self.orders.append(order)
                self.realized[oid] = pnl
            pos.qty -= closed * sign
            if not pos.qty:
                pos.entry = ZERO
            pos.updated = now
            return pnl - cost

    def find(self, api_key: str, order_id: str | None, client_id: str | None) -> Order | None:
        with self.book.lock:
            for o in reversed(self.orders):
                if o.api_key == api_key and ((order_id is not None and o.id == str(order_id))
                                             or (client_id is not None and o.client_id == client_id)):
                    return o
        return None
