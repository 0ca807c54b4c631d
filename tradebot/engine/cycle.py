"""The trading cycle of one pair: DB + broker wiring around the pure core (engine/core.py).

    reconcile pending intents -> shared candles -> shared indicators -> decision -> core.step (risk) ->
    order intent (committed) -> send -> book the fill (one transaction) -> user_state -> events

Crash safety: an `orders` row with a fresh client order id is COMMITTED before the order is sent; a fill
is booked in ONE transaction (order status, trade, position, user_state, ai_decision outcome and the
outbox events together), guarded by `status = 'pending'` so it is booked at most once.  A pending intent
is looked up on the exchange by client id (at start-up and at the start of every cycle of its pair):
filled -> booked, absent -> failed.  An order is never re-sent.

The pieces: booking.py (a fill, one transaction), reconcile.py (pending intents), breaker.py (the user-level
breaker), book_rows.py (PairBook <-> rows), wiring.py (locks, brokers, prefetch).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from decimal import Decimal

from .. import events, risk
from ..db import write_tx
from ..ha.fence import fence_pair
from ..models import (
    Order,
    Position,
    Trade,
    UserConfig,
    UserState,
)
from ..risk_futures import LIQUIDATION, funding_time
from ..strategy.base import DecisionContext, PositionView
from . import core
from .accounting import DAY_MS, mark_to_market
from .book_rows import (
    WORKING,
    ZERO,
    day_to_date,
    ensure_state,
    load_book,
    ms_to_dt,
    new_client_order_id,
    open_position,
    state_fields,
)
from .booking import book_order_fill
from .breaker import UserBreaker, record_reset, record_trip
from .decisions import DecisionRecorder
from .errors import ExchangeError, NetworkChanged, is_ambiguous
from .futures_funding import venue_funding as futures_venue_funding
from .futures_reconcile import check_position
from .llm_wiring import LLMWiring
from .order_log import order_failed, order_filled, order_sent
from .pair_rows import load_pair, update_state
from .reconcile import PendingIntents
from .wiring import CycleWiring

log = logging.getLogger(__name__)


class CycleRunner(CycleWiring, PendingIntents, UserBreaker, LLMWiring):
    """Runs pair cycles. Shared by every pair: holds only shared services and small caches."""

    def __init__(
        self,
        hub,
        decider_for,
        *,
        vault=None,
        indicators=None,
        candle_limit: int = 100,
        record_holds: str = "nontechnical",
        user_limits: risk.BreakerLimits | None = None,
        llm_ledger=None,
        llm_context=None,
    ):
        self.hub = hub
        self.llm_ledger = llm_ledger  # budgets and stored answers of LLM members (llm_ledger.py)
        self.llm_context = llm_context  # optional shared prompt context (llm_context.py)
        self.decider_for = decider_for  # name -> Decider
        self.vault = vault
        if indicators is None:
            from ..strategy.indicators import IndicatorCache

            indicators = IndicatorCache()
        self.indicators = indicators
        self.candle_limit = candle_limit
        self.decisions = DecisionRecorder(record_holds)
        self.user_limits = user_limits or risk.BreakerLimits(max_drawdown_percent=ZERO)
        self._brokers: OrderedDict[tuple, object] = OrderedDict()
        self._brokers_lock = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._pos_networks: dict[int, str] = {}
        self._lp_slots: bool | None = None
        self._funding_asked: dict[int, int] = {}  # config id -> ms the venue's funding was last asked
        # config id -> (exchange, data network, symbol, timeframe, interval): what prefetch() refreshes
        self.streams: dict[int, tuple] = {}

    # -------------------------------------------------------------- cycle

    @property
    def record_holds(self) -> str:
        return self.decisions.record_holds

    def run(self, config_id: int, now_ms: int, require_active: bool = False) -> dict:
        """One cycle of one pair. Raises on errors; the manager records them (see manager.run_job).
        With `require_active`, a pair no longer trading (or whose owner is not active) returns
        {"inactive": True} without doing anything."""
        with self.lock_for(config_id):
            return self._run(config_id, now_ms, require_active)

    def _run(self, config_id: int, now_ms: int, require_active: bool = False) -> dict:
        now = ms_to_dt(now_ms)
        rows = load_pair(config_id)  # ONE statement: config, owner, credential, state, position, pending
        if rows is None:
            if require_active:
                return {"inactive": True}
            raise UserConfig.DoesNotExist(f"pair {config_id} does not exist")
        cfg = rows.cfg
        if require_active and not (cfg.is_trading and rows.user_status == "active"):
            # stopped, removed or blocked from outside this process (`tradebot admin block`)
            return {"inactive": True}
        cred = rows.cred
        network = cred.network if cred is not None else "paper"
        broker = self.broker_for(cfg.user_id, cfg.exchange, cred)
        state = rows.state
        if state is None:
            with write_tx():
                state = ensure_state(cfg, network)
        pos = rows.position

        # 1. settle intents a crash or an ambiguous error left behind
        unsettled = False
        if rows.pending:
            pending_q = Order.select(Order.id).where((Order.config == cfg.id) & (Order.status == "pending"))
            self.reconcile_pending(cfg.id, now_ms)
            state = UserState.get_by_id(state.id)
            # An intent still unsettled (order open on the exchange, lookup failed) may yet fill: the book
            # does not know it, so a new order now could buy twice or sell what is already being sold.
            unsettled = pending_q.exists()
            pos = open_position(cfg.id)
        self._check_network(cfg, network, pos, unsettled)
        book = load_book(cfg, state, pos)

        # 2. shared market data and indicators
        md = self.hub.market_data
        data_net = self.data_network(cfg.exchange, network)
        futures = book.futures
        # a perpetual reads its own market's candles (not the spot market's), and its price is the mark price
        dsym = cfg.symbol
        self.streams[cfg.id] = (cfg.exchange, data_net, dsym, cfg.timeframe, int(cfg.interval_seconds or 60))
        candles = md.candles(cfg.exchange, data_net, dsym, cfg.timeframe, self.candle_limit)
        last_ts = state.last_candle_ts
        if not candles:
            since = []
        elif last_ts is None:
            since = candles[-1:]
        else:
            i = len(candles)
            while i > 0 and candles[i - 1].ts > last_ts:
                i -= 1
            since = candles[i:]
        last_price = None
        # futures: the mark price values the position, drives liquidation and the stop-loss guard (paper and live)
        lp = getattr(md, "mark_price" if futures else "last_price", None)
        if lp is not None:
            try:
                last_price = float(lp(cfg.exchange, data_net, dsym, **self._slot(lp, cfg)))
            except ExchangeError:
                raise
            except Exception:  # noqa: BLE001 - fall back to the last close
                last_price = None
        if last_price is None and candles:
            last_price = candles[-1].close

        settings = core.PairSettings.from_config(cfg, broker.rules(cfg.symbol))
        if futures and network != "paper" and not unsettled:
            # the venue's position is the pair's (one-way mode): a difference was made outside the bot
            px = Decimal(repr(last_price)) if last_price is not None else None
            gone = check_position(cfg, broker, book, network, px, settings, now_ms)
            if gone is not None:
                return {"orders": 0, "exit": None, "skipped": "external", "trip": None, "problem": (gone, True),
                        "had_error": state.last_error is not None}
        venue_funding = None
        if futures and network == "paper" and book.in_position and funding_time(now_ms) > book.last_funding_ms:
            # a funding time passed with the position open: the rate to book (one request per symbol per 10 min)
            settings = dataclasses.replace(settings, funding_rate=broker.funding_rate(cfg.symbol))
        elif futures and network != "paper" and not unsettled:
            # live/testnet: what the venue actually settled, also on a position closed since (futures_funding.py)
            mark = Decimal(repr(last_price)) if last_price is not None else None
            venue_funding = futures_venue_funding(self._funding_asked, cfg, broker, book, now_ms, mark)

        # 3. decision, only on a newly closed candle
        decision = None
        decision_row = None
        if since:
            preset = getattr(cfg, "preset", None)  # a [presets.<name>] carries the technical parameters
            decider = self.decider_for(f"{cfg.decider}@{preset}" if preset else cfg.decider)
            ind = self.indicators.get(cfg.exchange, data_net, dsym, cfg.timeframe, candles)  # shared with spot
            px = Decimal(repr(last_price)) if last_price is not None else book.last_price or ZERO
            if futures:
                equity = book.cash + book.margin + (book._futures_pnl(px) if book.holdings and px else ZERO)
            else:
                equity = book.cash + book.holdings * px if px else book.equity
            ctx = DecisionContext(
                symbol=cfg.symbol,
                timeframe=cfg.timeframe,
                candles=candles,
                indicators=ind,
                position=PositionView(book.holdings, book.entry_price, book.side) if book.in_position else None,
                cash=book.cash,
                equity=equity,
                last_price=px,
                allow_short=futures and settings.direction in ("both", "short"),
            )
            decision = self.decide(decider, ctx, cfg, data_net)

        # 4. pure core: exits, breaker, sizing
        prev_day, prev_start = book.day, book.day_start_equity
        prev_stop = book.stop_loss
        res = core.step(book, since, decision, settings, now_ms, last_price)
        # funding booked: (position id, side, paid) of paper's rate or of the venue's payments
        fundings = venue_funding or []
        if res.funding is not None:
            fundings = [(pos.id if pos is not None else None, book.side, res.funding)]
        open_funded = any(pos is not None and pid == pos.id for pid, _, _ in fundings)
        # the trailing stop moved or funding was booked: the open position's row follows
        pos_changed = pos is not None and book.in_position and (book.stop_loss != prev_stop or open_funded)
        if last_price is not None:  # user_states always reflects the latest price
            mark_to_market(book, Decimal(repr(last_price)))
        status = "paused" if book.breaker_until_ms else "running"
        if not cfg.is_trading:
            status = "stopped"
        fields = state_fields(book, now)
        fields.update(status=status, mode=network, last_candle_ts=candles[-1].ts if candles else last_ts)
        # Nothing written when nothing changed (no new candle, same price of a flat pair, same book): at
        # 20,000 pairs the calm cycles are most of them. `updated_at` / `last_cycle_at` move with a write.
        changed = {k: v for k, v in fields.items() if k != "updated_at" and getattr(state, k) != v}
        if not book.holdings and not book.in_position and set(changed) == {"last_price"}:
            changed = {}  # a flat pair's equity does not depend on the price: no write for a tick
        record = decision is not None and self.decisions.wanted(decision)
        if (changed or record or pos_changed or fundings or res.trip is not None or res.breaker_expired
                or res.rolled_day is not None):
            changed.update(updated_at=now, last_cycle_at=now)
            with write_tx():
                if pos_changed:
                    Position.update(stop_loss_price=book.stop_loss, funding=book.position_funding).where(
                        Position.id == pos.id
                    ).execute()
                for pid, side, paid in fundings:
                    if pid is not None and not (pos is not None and pid == pos.id):
                        # a position closed since: its funding column, as for an open one (realized_pnl is its
                        # fills' PnL; the pair's PnL in user_states carries the payment)
                        Position.update(funding=Position.funding + paid).where(Position.id == pid).execute()
                    events.emit(cfg.user_id, "funding", {
                        "symbol": cfg.symbol, "exchange": cfg.exchange, "side": side,
                        "amount": -paid, "rate": settings.funding_rate if network == "paper" else None,
                    }, cfg.id)
                if record:
                    decision_row = self.decisions.record(cfg, decision, since[-1].ts, now)
                if changed:
                    update_state(state.id, changed)
                if res.rolled_day is not None and prev_day is not None:
                    self._daily_performance(cfg, prev_day, prev_start, book.day_start_equity, now)
                if res.trip is not None:
                    record_trip(cfg, "pair", res.trip, book.breaker_until_ms, now)
                if res.breaker_expired:
                    record_reset(cfg.user_id, cfg.id, cfg.symbol, "pair", "cooldown over", now)

        # 5. orders
        outcome = {"orders": 0, "exit": res.exit, "skipped": res.skipped, "trip": res.trip, "problem": None,
                   "had_error": state.last_error is not None}
        if res.skipped == "below_minimum":
            outcome["problem"] = (self._below_minimum_message(cfg, book, settings, broker), True)
        for req in res.orders:
            if unsettled:
                outcome["skipped"] = "order_pending"
                outcome["problem"] = outcome["problem"] or (
                    f"{cfg.symbol}: an earlier order is not settled on the exchange yet; no new {req.side} "
                    f"order until it is.",
                    False,
                )
                continue
            # the user breaker pauses openings only; an exit (a futures short closes by a buy) always goes
            opens = (not req.reduce_only) if settings.market == "futures" else req.side == "buy"
            if opens and self._user_paused(cfg, now, now_ms):
                outcome["skipped"] = "user_breaker"
                continue
            if self._execute(cfg, network, broker, req, decision, decision_row, settings, now_ms):
                outcome["orders"] += 1
        return outcome

    def _check_network(self, cfg, network: str, pos: Position | None, unsettled: bool = True) -> None:
        """Never trade a position or an order of one network on another (paper coins sold on a live account,
        live coins forgotten in paper mode): the user reconnects the old network to settle it first."""
        other = None
        if unsettled:
            other = (
                Order.select(Order.network)
                .where((Order.config == cfg.id) & (Order.status == "pending") & (Order.network != network))
                .scalar()
            )
        what = "an unsettled order"
        if other is None and pos is not None:
            other = self._position_network(pos.id)
            what = f"an open position of {pos.amount:f} {cfg.symbol.split('/')[0]}"
        if other is not None and other != network:
            raise NetworkChanged(
                f"{cfg.symbol} on {cfg.exchange.capitalize()} has {what} from {other} trading, but the "
                f"exchange is now connected in {network} mode. Connect {other} again to close it, or remove "
                f"the pair."
            )

    def _position_network(self, position_id: int) -> str | None:
        """The network a position was opened on (its last opening fill's order). Fixed once known: cached."""
        with self._locks_lock:
            hit = self._pos_networks.get(position_id)
        if hit is not None:
            return hit
        found = (
            Order.select(Order.network)
            .join(Trade, on=(Trade.order == Order.id))
            .where((Trade.position == position_id) & Trade.pnl.is_null(True))  # an opening fill (any side)
            .order_by(Trade.id.desc())
            .scalar()
        )
        if found is not None:
            with self._locks_lock:
                if len(self._pos_networks) > 50_000:
                    self._pos_networks.clear()
                self._pos_networks[position_id] = found
        return found

    @staticmethod
    def _below_minimum_message(cfg, book, settings, broker) -> str:
        """Plain words for a pair too small to trade (ccxt does not check exchange minimums)."""
        quote = cfg.symbol.split("/")[-1]
        if book.in_position:
            return (
                f"{cfg.symbol}: the holding {book.holdings:f} is below the exchange's minimum order amount "
                f"{settings.min_amount or 0:f}, so it cannot be sold."
            )
        size = risk.position_size(book.equity, book.cash, settings.max_position_percent)
        px = book.last_price
        if (
            px
            and size >= (settings.min_cost or ZERO)
            and core.exit_below_minimum(size, px, settings)
        ):
            out = core.exit_price(px, settings)
            return (
                f"{cfg.symbol}: a position would be {size:.2f} {quote} ({settings.max_position_percent:f}% of "
                f"equity); after the fee, at its stop-loss price {out:f} it would be worth less than the "
                f"exchange minimum order of {settings.min_cost or 0:f} {quote}, so it could not be sold. Raise "
                f"the budget or the max position %."
            )
        return (
            f"{cfg.symbol}: a position would be {size:.2f} {quote} ({settings.max_position_percent:f}% of equity), "
            f"below the exchange minimum order of {settings.min_cost or 0:f} {quote}. Raise the budget or the "
            f"max position %."
        )

    def _execute(
        self, cfg, network, broker, req: core.OrderRequest, decision, decision_row, settings, now_ms
    ) -> bool:
        coid = new_client_order_id(cfg.id)
        now = ms_to_dt(now_ms)
        decision_id = decision_row.id if (decision_row is not None and req.reason == "signal") else None
        with write_tx():
            fence_pair(cfg.id)  # no intent (and so no order) unless this process holds the pair's lease
            order = Order.create(
                user=cfg.user_id,
                config=cfg.id,
                client_order_id=coid,
                exchange=cfg.exchange,
                network=network,
                symbol=cfg.symbol,
                side=req.side,
                amount=req.base_amount,
                quote_amount=req.quote_amount,
                reason=req.reason,
                decision=decision_id,
                created_at=now,
                updated_at=now,
            )
        # The intent is committed: from here on a crash is settled by reconcile, never by re-sending.
        order_sent(cfg, req, coid, network)
        try:
            if settings.market == "futures":
                liq = req.reason == LIQUIDATION
                fill = broker.futures_order(
                    cfg.symbol, req.side, req.base_amount, coid, reduce_only=req.reduce_only,
                    price=Decimal(repr(req.price_hint)) if liq else None, liquidation=liq,
                    leverage=settings.leverage, margin_mode=getattr(cfg, "margin_mode", None) or "isolated",
                )
            elif req.side == "buy":
                fill = broker.market_buy(cfg.symbol, req.quote_amount, coid)
            else:
                fill = broker.market_sell(cfg.symbol, req.base_amount, coid)
        except Exception as exc:
            order_failed(cfg, req, coid, exc)
            if is_ambiguous(exc):
                # maybe sent: leave pending, the next cycle looks it up by client id
                Order.update(error=str(exc)[:500], updated_at=now).where(Order.id == order.id).execute()
                raise
            with write_tx():
                Order.update(status="failed", error=_user_message(exc)[:500], updated_at=now).where(
                    (Order.id == order.id) & (Order.status == "pending")
                ).execute()
            raise
        if fill.status in WORKING:
            # accepted but not final (e.g. a market order still filling): booking part of it now would lose
            # the rest, so it stays pending and reconcile books it once, when it is final
            Order.update(exchange_order_id=fill.exchange_order_id, updated_at=now).where(
                Order.id == order.id
            ).execute()
            return False
        if fill.amount > ZERO:
            opening = not req.reduce_only if settings.market == "futures" else req.side == "buy"
            book_order_fill(order, fill, now_ms, settings, decision if opening else None)
            order_filled(cfg, fill)
            return True
        with write_tx():
            Order.update(
                status="canceled" if fill.status == "canceled" else "failed", updated_at=now
            ).where((Order.id == order.id) & (Order.status == "pending")).execute()
        order_failed(cfg, req, coid, f"nothing filled ({fill.status})")
        return False

    def _daily_performance(self, cfg, day: int, start: Decimal | None, end: Decimal, now) -> None:
        from ..models import DailyPerformance

        d = day_to_date(day)
        lo, hi = ms_to_dt(day * DAY_MS), ms_to_dt((day + 1) * DAY_MS)
        trades = list(
            Trade.select(Trade.pnl, Trade.fee).where(
                (Trade.config == cfg.id) & (Trade.executed_at >= lo) & (Trade.executed_at < hi)
            )
        )
        start = start if start is not None else end
        DailyPerformance.insert(
            user=cfg.user_id,
            config=cfg.id,
            day=d,
            start_equity=start,
            end_equity=end,
            pnl=end - start,
            trades=len(trades),
            wins=sum(1 for t in trades if t.pnl is not None and t.pnl > ZERO),
            losses=sum(1 for t in trades if t.pnl is not None and t.pnl < ZERO),
            fees=sum((t.fee or ZERO for t in trades), ZERO),
            created_at=now,
        ).on_conflict_ignore().execute()


def _user_message(exc: Exception) -> str:
    return getattr(exc, "user_message", None) or f"{type(exc).__name__}: {exc}"
