"""Per-pair accounting, pure and Decimal-exact.  One `PairBook` per trading pair.

Every pair is an isolated bot with its own budget: its `cash` is the free quote currency it may spend,
its `holdings` the base it holds NET of fees.  Equity = cash + holdings * last price.

- `apply_buy(book, fill)`: cash -= fill.net_quote (the quote actually spent, incl. a quote fee);
  holdings += fill.net_base (base actually received: on Binance/Bybit spot the buy fee is taken in base);
  cost_basis += fill.net_quote; entry_price = average gross fill price of the open position.
- `apply_sell(book, fill)`: cash += fill.net_quote (quote received after fee); holdings -= fill.net_base;
  the cost basis is released in proportion to the base sold; realized PnL = proceeds - released cost.
  So fees on both legs are inside the PnL.
- `mark_to_market(book, price)`: equity, unrealized PnL, peak equity, daily PnL.
- `roll_day(book, day)`: at 00:00 UTC the daily PnL restarts from the current equity.

Functions mutate the book in place (allocation-light for the backtester) and return it / the PnL.
Days are integer UTC day numbers (ms // 86_400_000); times are ms since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

ZERO = Decimal(0)
DAY_MS = 86_400_000


@dataclass(slots=True)
class PairBook:
    budget: Decimal
    cash: Decimal
    holdings: Decimal = ZERO
    cost_basis: Decimal = ZERO  # quote spent on the current holdings, fees included
    entry_price: Decimal | None = None  # average fill price of the open position
    in_position: bool = False
    stop_loss: Decimal | None = None  # absolute prices of the open position
    take_profit: Decimal | None = None
    sl_f: float | None = None  # float copies for the cheap per-candle exit check
    tp_f: float | None = None
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    last_price: Decimal | None = None
    equity: Decimal = ZERO
    peak_equity: Decimal = ZERO
    day: int | None = None  # UTC day number of daily_pnl
    day_start_equity: Decimal | None = None
    daily_pnl: Decimal = ZERO
    consecutive_losses: int = 0
    breaker_until_ms: int = 0  # 0 = not tripped
    breaker_reason: str | None = None
    # risk references: equity the daily-loss / drawdown checks measure from; moved on a trip or reset
    risk_day_ref: Decimal | None = None
    risk_peak_ref: Decimal | None = None
    trades_today: int = 0
    wins_today: int = 0
    losses_today: int = 0
    fees_today: Decimal = ZERO
    position_pnl: Decimal = ZERO  # realized PnL of the current (or last closed) position, all its sells
    # futures (engine/futures.py): holdings are the position size in base (always >= 0), `side` its direction,
    # `margin` the quote locked by it (cash excludes it); equity = cash + margin + unrealized PnL
    futures: bool = False
    side: str = "long"
    leverage: int = 1
    margin: Decimal = ZERO
    funding_paid: Decimal = ZERO  # + paid, - received, all positions of the pair
    position_funding: Decimal = ZERO  # of the open position
    last_funding_ms: int = 0  # funding time last booked (or the one before the position opened)

    @property
    def unrealized_pnl(self) -> Decimal:
        if not self.holdings or self.last_price is None:
            return ZERO
        if self.futures:
            return self._futures_pnl(self.last_price)
        return self.holdings * self.last_price - self.cost_basis

    def _futures_pnl(self, price: Decimal) -> Decimal:
        diff = price - self.entry_price if self.entry_price is not None else ZERO
        return -self.holdings * diff if self.side == "short" else self.holdings * diff

    def copy(self) -> PairBook:
        return PairBook(**{f.name: getattr(self, f.name) for f in fields(self)})


def new_book(budget: Decimal, day: int | None = None) -> PairBook:
    budget = Decimal(budget)
    return PairBook(
        budget=budget,
        cash=budget,
        equity=budget,
        peak_equity=budget,
        day=day,
        day_start_equity=budget,
        risk_day_ref=budget,
        risk_peak_ref=budget,
    )


def apply_buy(book: PairBook, fill) -> PairBook:
    """Book a (possibly partial) buy fill. Uses fill.net_base, fill.net_quote, fill.price, fill.fee_quote."""
    held = book.holdings
    got = fill.net_base
    if got <= ZERO:
        return book
    if not book.in_position:
        book.position_pnl = ZERO  # a new position
    if book.entry_price is None or held <= ZERO:
        book.entry_price = fill.price
    else:
        book.entry_price = (book.entry_price * held + fill.price * got) / (held + got)
    book.holdings = held + got
    book.cash -= fill.net_quote
    book.cost_basis += fill.net_quote
    book.fees_paid += fill.fee_quote
    book.fees_today += fill.fee_quote
    book.trades_today += 1
    book.in_position = True
    return book


def apply_sell(book: PairBook, fill, dust: Decimal = ZERO) -> tuple[PairBook, Decimal]:
    """Book a sell fill; returns (book, realized PnL of this fill, fees included).
    The position is closed when what is left is below `dust` (the smallest sellable amount) or zero."""
    held = book.holdings
    sold = fill.net_base
    if sold > held:  # never book more than we hold (defensive: exchange rounding)
        sold = held
    if held > ZERO:
        released = book.cost_basis if sold == held else book.cost_basis * sold / held
    else:
        released = ZERO
    pnl = fill.net_quote - released
    book.holdings = held - sold
    book.cost_basis -= released
    book.cash += fill.net_quote
    book.realized_pnl += pnl
    book.position_pnl += pnl
    book.fees_paid += fill.fee_quote
    book.fees_today += fill.fee_quote
    book.trades_today += 1
    if book.holdings <= ZERO or book.holdings < dust:
        book.in_position = False
        book.entry_price = None
        book.stop_loss = book.take_profit = None
        book.sl_f = book.tp_f = None
        if book.holdings <= ZERO:
            book.holdings = ZERO
            book.cost_basis = ZERO
    if fill.price is not None:
        mark_to_market(book, fill.price)
    return book, pnl


def mark_to_market(book: PairBook, price: Decimal) -> Decimal:
    """Value the pair at `price`; updates equity, peak equity and daily PnL. Returns equity."""
    book.last_price = price
    if book.futures:
        eq = book.cash + book.margin + book._futures_pnl(price) if book.holdings else book.cash + book.margin
    else:
        eq = book.cash + book.holdings * price if book.holdings else book.cash
    book.equity = eq
    if eq > book.peak_equity:
        book.peak_equity = eq
    if book.risk_peak_ref is None or eq > book.risk_peak_ref:
        book.risk_peak_ref = eq
    if book.day_start_equity is not None:
        book.daily_pnl = eq - book.day_start_equity
    return eq


def roll_day(book: PairBook, day: int) -> PairBook:
    """Start a new UTC day: daily PnL restarts at 0 from the current equity."""
    book.day = day
    book.day_start_equity = book.equity
    book.risk_day_ref = book.equity
    book.daily_pnl = ZERO
    book.trades_today = book.wins_today = book.losses_today = 0
    book.fees_today = ZERO
    return book
