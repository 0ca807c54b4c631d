"""Replay candles through the live trading core (engine.core.step / book_fill).

Timeline of one candle i (what the live bot does at each candle close):
1. At candle i's OPEN, orders decided at the close of candle i-1 fill, at that open price
   (the live bot sends a market order right after a candle closes; the next candle's open
   is the first price it can get).
2. At candle i's CLOSE: the indicators take candle i, the decider decides, and
   `core.step(book, [candle i], decision, settings, now=close time, last_price=close)` runs:
   - while holding, stop-loss / take-profit are checked against candle i's low/high
     (risk.check_exit: if both lie inside the candle the STOP-LOSS wins; a candle that opens
     beyond a level exits at the open). With `exit_fill="trigger"` the exit fills at that
     trigger price inside candle i; with "next_open" it fills at the next candle's open like any
     other order. "auto" (default) picks what the live bot does: it checks the last price every
     cycle (`interval_seconds`, 60 by default) and sells at market, so when the timeframe is not
     longer than the cycle (1m candles, 60 s cycles) the exit is at the next open (exactly, see
     tests/test_backtest_parity.py), and on longer timeframes it lands near the trigger;
   - the circuit breaker is evaluated on the marked-to-market equity and on every closed trade,
     with the same cooldown clock (candle close times);
   - a buy/sell signal becomes an order for step 1 of the next candle.
An order still pending after the last candle is not filled. The final equity values any open
position at the last close.

Hot loop: plain floats and lists; no Decimal and no allocation on a flat candle beyond the
indicator update; the technical decider's `quick_action` runs on the live IndicatorSet and a
full Decision is built only when it wants to act.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ..engine import core
from ..engine.accounting import DAY_MS, mark_to_market, new_book
from ..exchange.base import MarketRules
from ..risk import STOP_LOSS, TAKE_PROFIT
from ..risk_futures import LIQUIDATION
from ..strategy.base import Candle, DecisionContext, PositionView
from ..strategy.indicators import IndicatorSet
from .data import Series, timeframe_name
from .fills import FUTURES_SOURCE, futures_fill, market_fill
from .fills import SOURCE as FILL_SOURCE


@dataclass
class TradeRecord:
    """One round trip (entry fill + exit fill). Money in quote currency, fees included in pnl."""

    entry_ts: int
    entry_price: Decimal
    amount: Decimal  # base received, net of the base fee
    entry_cost: Decimal  # quote spent
    entry_fee: Decimal  # valued in quote
    confidence: int = 0
    reasoning: str = ""
    exit_ts: int | None = None
    exit_price: Decimal | None = None
    exit_amount: Decimal | None = None
    proceeds: Decimal | None = None  # quote received, net of fee
    exit_fee: Decimal | None = None
    pnl: Decimal | None = None
    pnl_percent: Decimal | None = None  # of entry_cost
    reason: str | None = None  # signal | stop_loss | take_profit | liquidation (futures)
    bars: int = 0  # candles held
    side: str = "long"  # futures: long | short
    funding: Decimal = Decimal(0)  # futures: funding paid (+) / received (-) while open (inside pnl)

    @property
    def closed(self) -> bool:
        return self.exit_ts is not None


@dataclass
class BreakerTrip:
    ts: int  # ms, the cycle (candle close) at which it tripped
    kind: str
    detail: str
    until_ms: int


@dataclass
class BacktestConfig:
    symbol: str
    timeframe: str
    rules: MarketRules
    settings: core.PairSettings
    balance: Decimal = Decimal(1000)
    exchange: str = "binance"
    exit_fill: str = "auto"  # auto | trigger | next_open
    interval_seconds: int = 60  # the live cycle interval "auto" compares the timeframe with

    def __post_init__(self):
        if self.exit_fill not in ("auto", "trigger", "next_open"):
            raise ValueError("exit_fill must be 'auto', 'trigger' or 'next_open'")

    def exit_mode(self, interval_ms: int) -> str:
        if self.exit_fill != "auto":
            return self.exit_fill
        return "next_open" if interval_ms <= self.interval_seconds * 1000 else "trigger"


@dataclass
class BacktestResult:
    config: BacktestConfig
    decider: str
    series: Series
    start: int  # first traded candle (before it: indicator warm-up)
    equity: list[float]  # equity at each traded candle's close
    in_position: int  # traded candles that closed with a position held
    trades: list[TradeRecord]
    trips: list[BreakerTrip]
    book: object  # the final accounting.PairBook
    final_equity: Decimal
    skipped: dict[str, int] = field(default_factory=dict)  # buys the core refused, by reason
    unfilled_at_end: str | None = None
    fill_source: str = ""
    exit_fill: str = "trigger"  # the resolved mode


class _CandleView(Sequence):
    """ctx.candles for deciders that read history: closed candles [0, stop) of the series."""

    __slots__ = ("_s", "_n")

    def __init__(self, s: Series, stop: int):
        self._s, self._n = s, stop

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._s.candle(j) for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._s.candle(i)


def run_backtest(series: Series, decider, cfg: BacktestConfig, start: int = 0,
                 progress: Callable[[int], None] | None = None) -> BacktestResult:
    ts, op, hi, lo, cl = series.ts, series.open, series.high, series.low, series.close
    n = len(series)
    tf = series.interval_ms
    settings, rules = cfg.settings, cfg.rules
    make_set = getattr(decider, "indicator_set", None)  # a decider with its own periods (technical parameters)
    iset = make_set() if make_set is not None else IndicatorSet()
    for i in range(start):  # warm-up candles before --from: indicators only
        iset.update(ts[i], hi[i], lo[i], cl[i])
    book = new_book(cfg.balance, day=(ts[start] + tf) // DAY_MS if start < n else None)
    quick = getattr(decider, "quick_action", None)
    step, nothing, update = core.step, core.NOTHING, iset.update
    tfname = timeframe_name(tf)

    trades: list[TradeRecord] = []
    trips: list[BreakerTrip] = []
    skipped: dict[str, int] = {}
    equity: list[float] = []
    eq_append = equity.append
    cash_f, hold_f = float(book.cash), 0.0
    in_pos = 0
    pending = None  # (OrderRequest, decision) to fill at the next open
    open_trade: TradeRecord | None = None
    seq = 0

    futures = settings.market == "futures"
    may_short = futures and settings.direction in ("both", "short")
    if futures:
        book.futures, book.leverage = True, settings.leverage
    funding_before = Decimal(0)

    def fill(order, decision, price: float, at_ms: int, now_ms: int) -> None:
        nonlocal cash_f, hold_f, open_trade, seq, funding_before
        seq += 1
        px = Decimal(repr(price))
        if futures:
            f = futures_fill(rules, order, px, f"bt-{seq}", at_ms)
        else:
            f = market_fill(rules, order.side, px, order.quote_amount, order.base_amount, f"bt-{seq}", at_ms)
        if isinstance(f, str):  # refused like the exchange would (e.g. below minimum): nothing changes
            key = f"{order.side}_rejected"
            skipped[key] = skipped.get(key, 0) + 1
            return
        out = core.book_fill(book, f, settings, now_ms, decision)
        if out.pnl is None:  # opening: a spot buy, a futures long or short
            open_trade = TradeRecord(at_ms, f.price, f.net_base, f.net_quote, f.fee_quote,
                                     getattr(decision, "confidence", 0), getattr(decision, "reasoning", ""),
                                     side=book.side if futures else "long")
            if futures:  # the trade's cost is its margin plus the fee (pnl % = return on margin)
                open_trade.entry_cost = f.cost / Decimal(settings.leverage) + f.fee_quote
            funding_before = book.funding_paid
            trades.append(open_trade)
        elif open_trade is not None:
            t = open_trade
            t.exit_ts, t.exit_price, t.exit_amount = at_ms, f.price, f.net_base
            t.proceeds = (t.proceeds or 0) + f.net_quote
            t.exit_fee = (t.exit_fee or 0) + f.fee_quote
            t.pnl = (t.pnl or 0) + out.pnl
            t.reason = order.reason
            if futures:  # funding while open belongs to the round trip
                t.funding = book.funding_paid - funding_before
                if out.closed:
                    t.pnl -= t.funding
            if out.closed:
                t.pnl_percent = t.pnl * 100 / t.entry_cost if t.entry_cost else Decimal(0)
                t.bars = (at_ms - t.entry_ts) // tf
                open_trade = None
        if out.trip is not None:
            trips.append(BreakerTrip(now_ms, out.trip.kind, out.trip.detail, book.breaker_until_ms))
        cash_f, hold_f = float(book.cash), float(book.holdings)

    def futures_equity(close: float) -> float:
        return float(book.cash + book.margin) + (float(book._futures_pnl(Decimal(repr(close))))
                                                  if book.holdings else 0.0)

    trigger_exits = cfg.exit_mode(tf) == "trigger"
    mask = 0x3FFF if quick is not None else 0
    for i in range(start, n):
        if pending is not None:
            order, decision = pending
            pending = None
            fill(order, decision, op[i], ts[i], ts[i])
        c = cl[i]
        update(ts[i], hi[i], lo[i], c)
        holding = book.in_position
        if quick is not None:
            # a futures pair: the fast path must see the position's side and whether shorts may open
            decision = quick(iset, holding, book.side, may_short) if futures else quick(iset, holding)
            if decision != "hold":
                decision = decider.decide(_context(cfg, tfname, series, i, iset, book, c))
        else:
            decision = decider.decide(_context(cfg, tfname, series, i, iset, book, c))
        now = ts[i] + tf
        candles = (Candle(ts[i], op[i], hi[i], lo[i], c, 0.0),) if holding else ()
        res = step(book, candles, decision, settings, now, c)
        if res is not nothing:
            if res.trip is not None:
                trips.append(BreakerTrip(now, res.trip.kind, res.trip.detail, book.breaker_until_ms))
            if res.skipped is not None:
                skipped[res.skipped] = skipped.get(res.skipped, 0) + 1
            for order in res.orders:
                if order.reason == LIQUIDATION:  # the exchange liquidates at once, at the bankruptcy price
                    fill(order, decision, order.price_hint, ts[i], now)
                elif trigger_exits and order.reason in (STOP_LOSS, TAKE_PROFIT):
                    fill(order, decision, order.price_hint, ts[i], now)
                else:
                    pending = (order, decision)
        if futures:
            if res is not nothing and res.funding is not None:
                cash_f = float(book.cash)
            if book.in_position:
                in_pos += 1
            eq_append(futures_equity(c))
        elif hold_f:
            in_pos += 1
            eq_append(cash_f + hold_f * c)
        else:
            eq_append(cash_f)
        if progress is not None and not (i & mask):
            progress(i - start)

    if n > start:
        mark_to_market(book, Decimal(repr(cl[-1])))
    if open_trade is not None:  # still held at the end: candles held up to the last close
        open_trade.bars = (ts[-1] + tf - open_trade.entry_ts) // tf
    unfilled = None
    if pending is not None:
        unfilled = f"{pending[0].side} ({pending[0].reason}) decided at the last candle, not filled"
    return BacktestResult(cfg, getattr(decider, "name", type(decider).__name__), series, start, equity,
                          in_pos, trades, trips, book, book.equity, skipped, unfilled,
                          FUTURES_SOURCE if futures else FILL_SOURCE, cfg.exit_mode(tf))


def _context(cfg: BacktestConfig, tfname: str, series: Series, i: int, iset: IndicatorSet, book,
             close: float) -> DecisionContext:
    last = Decimal(repr(close))
    pos = PositionView(book.holdings, book.entry_price, book.side) if book.in_position else None
    if book.futures:
        equity = book.cash + book.margin + (book._futures_pnl(last) if book.holdings else Decimal(0))
        allow_short = cfg.settings.direction in ("both", "short")
    else:
        equity = book.cash + book.holdings * last
        allow_short = False
    return DecisionContext(cfg.symbol, tfname, _CandleView(series, i + 1), iset.snapshot(), pos,
                           book.cash, equity, last, allow_short)
