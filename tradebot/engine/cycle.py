"""The trading cycle of one pair: DB + broker wiring around the pure core (engine/core.py).

    reconcile pending intents -> shared candles -> shared indicators -> decision -> core.step (risk) ->
    order intent (committed) -> send -> book the fill (one transaction) -> user_state -> events

Crash safety: an `orders` row with a fresh client order id is COMMITTED before the order is sent; a fill
is booked in ONE transaction (order status, trade, position, user_state, ai_decision outcome and the
outbox events together), guarded by `status = 'pending'` so it is booked at most once.  A pending intent
is looked up on the exchange by client id (at start-up and at the start of every cycle of its pair):
filled -> booked, absent -> failed.  An order is never re-sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import OrderedDict
from decimal import Decimal

from .. import events, risk
from ..db import write_tx
from ..instance_lock import fence
from ..models import (
    AIDecision,
    ExchangeCredential,
    Order,
    Position,
    RiskEvent,
    Trade,
    User,
    UserConfig,
    UserState,
)
from ..strategy.base import DecisionContext, PositionView
from . import core
from .accounting import DAY_MS, PairBook, mark_to_market
from .decisions import DecisionRecorder
from .errors import ExchangeError, NetworkChanged, is_ambiguous
from .order_log import order_failed, order_filled, order_sent
from .pair_rows import load_pair, update_state

log = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Fill statuses of an order still working on the exchange (more may fill): never booked, left pending
WORKING = ("open", "partially_filled")
EPOCH = dt.datetime(1970, 1, 1)


def ms_to_dt(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def dt_to_ms(value: dt.datetime) -> int:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return int((value - EPOCH) / dt.timedelta(milliseconds=1))


def day_to_date(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


def date_to_day(value: dt.date) -> int:
    return (value - dt.date(1970, 1, 1)).days


def new_client_order_id(config_id: int) -> str:
    return f"tb{config_id}-{uuid.uuid4().hex[:24]}"[:36]


# ---------------------------------------------------------------- book <-> rows


def load_book(cfg: UserConfig, state: UserState, position: Position | None) -> PairBook:
    budget = Decimal(cfg.budget)
    b = PairBook(budget=budget, cash=state.cash)
    b.holdings = state.holdings or ZERO
    b.realized_pnl = state.realized_pnl or ZERO
    b.fees_paid = state.fees_paid or ZERO
    b.last_price = state.last_price
    b.equity = state.equity
    b.peak_equity = state.peak_equity
    b.day = date_to_day(state.daily_pnl_date) if state.daily_pnl_date else None
    b.day_start_equity = state.day_start_equity if state.day_start_equity is not None else state.equity
    b.daily_pnl = state.daily_pnl or ZERO
    b.consecutive_losses = state.consecutive_losses or 0
    b.breaker_until_ms = dt_to_ms(state.breaker_until) if state.breaker_until else 0
    b.breaker_reason = state.breaker_reason
    b.risk_day_ref = state.risk_day_ref if state.risk_day_ref is not None else b.day_start_equity
    b.risk_peak_ref = state.risk_peak_ref if state.risk_peak_ref is not None else b.peak_equity
    if position is not None:
        b.in_position = True
        b.cost_basis = position.cost_basis
        b.position_pnl = position.realized_pnl or ZERO
        b.entry_price = position.entry_price
        b.stop_loss = position.stop_loss_price
        b.take_profit = position.take_profit_price
        b.sl_f = float(b.stop_loss) if b.stop_loss is not None else None
        b.tp_f = float(b.take_profit) if b.take_profit is not None else None
    elif b.holdings and b.last_price is not None:
        # dust left after a close: its cost basis = value - unrealized
        b.cost_basis = b.holdings * b.last_price - (state.unrealized_pnl or ZERO)
    return b


def state_fields(book: PairBook, now: dt.datetime) -> dict:
    return {
        "balance": book.budget,
        "cash": book.cash,
        "holdings": book.holdings,
        "equity": book.equity,
        "realized_pnl": book.realized_pnl,
        "unrealized_pnl": book.unrealized_pnl,
        "fees_paid": book.fees_paid,
        "daily_pnl": book.daily_pnl,
        "daily_pnl_date": day_to_date(book.day) if book.day is not None else None,
        "day_start_equity": book.day_start_equity,
        "peak_equity": book.peak_equity,
        "last_price": book.last_price,
        "consecutive_losses": book.consecutive_losses,
        "breaker_until": ms_to_dt(book.breaker_until_ms) if book.breaker_until_ms else None,
        "breaker_reason": book.breaker_reason,
        "risk_day_ref": book.risk_day_ref,
        "risk_peak_ref": book.risk_peak_ref,
        "updated_at": now,
    }


def save_state(state_id: int, book: PairBook, now: dt.datetime, **extra) -> None:
    fields = state_fields(book, now)
    fields.update(extra)
    UserState.update(**fields).where(UserState.id == state_id).execute()


def ensure_state(cfg: UserConfig, mode: str = "paper") -> UserState:
    state = UserState.get_or_none(UserState.config == cfg.id)
    if state is None:
        b = Decimal(cfg.budget)
        state = UserState.create(
            user=cfg.user_id,
            config=cfg.id,
            status="stopped",
            mode=mode,
            balance=b,
            cash=b,
            equity=b,
            peak_equity=b,
        )
    return state


def open_position(config_id: int) -> Position | None:
    return (
        Position.select()
        .where((Position.config == config_id) & (Position.status == "open"))
        .order_by(Position.id.desc())
        .first()
    )


def _pct(pnl: Decimal, base: Decimal) -> Decimal | None:
    return (pnl * HUNDRED / base).quantize(Decimal("0.01")) if base else None


# ---------------------------------------------------------------- booking


def book_order_fill(
    order: Order, fill, now_ms: int, settings: core.PairSettings | None = None, decision=None
) -> core.FillOutcome | None:
    """Book `fill` of the pending `order`: ONE transaction for order, trade, position, user_state,
    decision outcome and events. Returns None if the order was already booked (or not pending)."""
    cfg = UserConfig.get_by_id(order.config_id)
    if settings is None:
        settings = core.PairSettings.from_config(cfg)
    now = ms_to_dt(now_ms)
    with write_tx():
        claimed = (
            Order.update(
                status="filled",
                exchange_order_id=fill.exchange_order_id,
                filled_amount=fill.amount,
                cost=fill.cost,
                avg_price=fill.price,
                fee=fill.fee,
                fee_currency=fill.fee_currency,
                updated_at=now,
            )
            .where((Order.id == order.id) & (Order.status == "pending"))
            .execute()
        )
        if claimed != 1:
            return None
        state = UserState.get(UserState.config == cfg.id)
        pos = open_position(cfg.id)
        book = load_book(cfg, state, pos)
        if book.day is None:
            book.day = now_ms // DAY_MS
        cost_before = book.cost_basis
        # `decision` may carry absolute stop-loss / take-profit prices proposed by the decider
        out = core.book_fill(book, fill, settings, now_ms, decision)
        pnl_pct = None
        if fill.side == "buy":
            if pos is None:
                pos = Position.create(
                    user=cfg.user_id,
                    config=cfg.id,
                    exchange=cfg.exchange,
                    symbol=cfg.symbol,
                    side=cfg.side,
                    leverage=cfg.leverage,
                    amount=book.holdings,
                    entry_price=book.entry_price,
                    cost_basis=book.cost_basis,
                    stop_loss_price=book.stop_loss,
                    take_profit_price=book.take_profit,
                    decision=order.decision_id,
                    opened_at=now,
                )
            else:
                Position.update(
                    amount=book.holdings,
                    entry_price=book.entry_price,
                    cost_basis=book.cost_basis,
                    stop_loss_price=book.stop_loss,
                    take_profit_price=book.take_profit,
                ).where(Position.id == pos.id).execute()
        elif pos is not None:
            released = cost_before - book.cost_basis
            pnl_pct = _pct(out.pnl, released)
            total = (pos.realized_pnl or ZERO) + out.pnl
            if out.closed:
                Position.update(
                    status="closed",
                    amount=pos.amount,
                    exit_price=fill.price,
                    realized_pnl=total,
                    close_reason=order.reason,
                    closed_at=now,
                ).where(Position.id == pos.id).execute()
                if pos.decision_id:
                    AIDecision.update(
                        outcome="profitable" if total > ZERO else "loss",
                        profitable=total > ZERO,
                        pnl=total,
                    ).where(_decision_and_agreeing_parts(pos.decision_id)).execute()
            else:
                Position.update(amount=book.holdings, cost_basis=book.cost_basis, realized_pnl=total).where(
                    Position.id == pos.id
                ).execute()
        trade_amount = fill.net_base
        Trade.create(
            user=cfg.user_id,
            config=cfg.id,
            order=order.id,
            position=pos.id if pos is not None else None,
            exchange=cfg.exchange,
            symbol=cfg.symbol,
            side=fill.side,
            amount=trade_amount,
            price=fill.price,
            cost=fill.cost,
            fee=fill.fee_quote,
            pnl=out.pnl,
            pnl_percent=pnl_pct,
            reason=order.reason,
            client_order_id=order.client_order_id,
            executed_at=ms_to_dt(fill.timestamp) if getattr(fill, "timestamp", None) else now,
        )
        if order.decision_id:
            AIDecision.update(executed=True).where(_decision_and_agreeing_parts(order.decision_id)).execute()
        save_state(state.id, book, now)
        base = {"symbol": cfg.symbol, "exchange": cfg.exchange}
        if fill.side == "buy":
            events.emit(
                cfg.user_id,
                "trade_opened",
                {
                    **base,
                    "amount": trade_amount,
                    "price": fill.price,
                    "cost": fill.cost,
                    "fee": fill.fee_quote,
                },
                cfg.id,
            )
        else:
            events.emit(
                cfg.user_id,
                "trade_closed",
                {
                    **base,
                    "amount": trade_amount,
                    "price": fill.price,
                    "pnl": out.pnl,
                    "pnl_percent": pnl_pct,
                    "reason": order.reason or "signal",
                },
                cfg.id,
            )
        if out.trip is not None:
            record_trip(cfg, "pair", out.trip, book.breaker_until_ms, now)
    return out


def _decision_and_agreeing_parts(decision_id: int):
    """The decision row plus, for an ensemble, the member rows of the same candle that voted the same way
    (they are stored right after it), so every provider's accuracy counts the trades it called."""
    main = AIDecision.get_or_none(AIDecision.id == decision_id)
    if main is None or main.provider != "ensemble":
        return AIDecision.id == decision_id
    return (
        (AIDecision.config == main.config_id)
        & (AIDecision.candle_ts == main.candle_ts)
        & (AIDecision.action == main.action)
        & (AIDecision.id >= main.id)
    )


def record_trip(cfg_or_user, scope: str, trip: risk.Trip, until_ms: int, now: dt.datetime) -> None:
    """risk_events row + one breaker_tripped event (call inside the booking / state transaction)."""
    if scope == "pair":
        user_id, config_id, symbol = cfg_or_user.user_id, cfg_or_user.id, cfg_or_user.symbol
    else:
        user_id, config_id, symbol = cfg_or_user.id, None, None
    until = ms_to_dt(until_ms)
    RiskEvent.create(
        user=user_id,
        config=config_id,
        scope=scope,
        kind=trip.kind,
        detail=trip.detail,
        value=trip.value,
        threshold=trip.threshold,
        until=until,
        created_at=now,
    )
    events.emit(
        user_id,
        "breaker_tripped",
        {"scope": scope, "symbol": symbol, "reason": trip.detail, "until": until.replace(tzinfo=dt.UTC)},
        config_id,
    )
    if scope == "pair":
        UserState.update(status="paused").where(UserState.config == config_id).execute()


def record_reset(user_id: int, config_id: int | None, symbol: str | None, scope: str, why: str, now) -> None:
    RiskEvent.create(user=user_id, config=config_id, scope=scope, kind="reset", detail=why, created_at=now)
    events.emit(user_id, "breaker_reset", {"scope": scope, "symbol": symbol}, config_id)


# ---------------------------------------------------------------- reconcile


def _settings_for(order: Order, broker) -> core.PairSettings:
    """The pair's settings WITH the market rules: without the step and the minimum a sell that leaves dust
    below the step would not close the position (and the pair could never buy again). Raises when the
    markets are unreachable: the intent then stays pending and is booked by a later reconcile."""
    cfg = UserConfig.get_by_id(order.config_id)
    return core.PairSettings.from_config(cfg, broker.rules(order.symbol))


def reconcile_order(order: Order, broker, now_ms: int) -> str:
    """Settle one pending intent against the exchange. Returns the new status ('pending' if unknown)."""
    fill = broker.find_order(order.symbol, order.client_order_id)
    if fill is None:
        # An order sent just before a crash may still be in transit: "absent" is final only once the
        # exchange would refuse it as too old (its recvWindow), so a young intent stays pending.
        if now_ms - dt_to_ms(order.created_at) < getattr(broker, "settle_after_ms", 0):
            return "pending"
        with write_tx():
            Order.update(
                status="failed", error="not found on the exchange", updated_at=ms_to_dt(now_ms)
            ).where((Order.id == order.id) & (Order.status == "pending")).execute()
        return "failed"
    if fill.status in WORKING:
        return "pending"  # still working: book it once, when final (later fills would be lost)
    if fill.amount > ZERO and fill.status in ("filled", "canceled", "closed", "expired"):
        book_order_fill(order, fill, now_ms, _settings_for(order, broker))
        order_filled(order, fill)  # the order row names user, pair and exchange as a config does
        return "filled"
    if fill.status in ("canceled", "rejected", "expired"):
        with write_tx():
            Order.update(
                status="canceled" if fill.status == "canceled" else "failed", updated_at=ms_to_dt(now_ms)
            ).where((Order.id == order.id) & (Order.status == "pending")).execute()
        return "failed"
    return "pending"


# ---------------------------------------------------------------- the cycle


class CycleRunner:
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
    ):
        self.hub = hub
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
        # config id -> (exchange, data network, symbol, timeframe, interval): what prefetch() refreshes
        self.streams: dict[int, tuple] = {}

    # -------------------------------------------------------------- helpers

    def lock_for(self, config_id: int) -> threading.Lock:
        with self._locks_lock:
            lock = self._locks.get(config_id)
            if lock is None:
                lock = self._locks[config_id] = threading.Lock()
            return lock

    def credential(self, user_id: int, exchange: str) -> ExchangeCredential | None:
        return ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user_id) & (ExchangeCredential.exchange == exchange)
        )

    def broker_for(self, user_id: int, exchange: str, cred: ExchangeCredential | None = None):
        if cred is None:
            cred = self.credential(user_id, exchange)
        network = cred.network if cred is not None else "paper"
        stamp = cred.updated_at if cred is not None else None
        key = (user_id, exchange, network, stamp) if network != "paper" else ("paper", exchange)
        with self._brokers_lock:
            broker = self._brokers.get(key)
            if broker is not None:
                self._brokers.move_to_end(key)
                return broker
        if network == "paper":
            broker = self.hub.broker(exchange, "paper")
        else:
            api_key = self.vault.decrypt(cred.api_key_enc) if cred.api_key_enc else None
            secret = self.vault.decrypt(cred.secret_enc) if cred.secret_enc else None
            broker = self.hub.broker(exchange, network, api_key, secret)
        with self._brokers_lock:
            self._brokers[key] = broker
            while len(self._brokers) > 2048:
                self._brokers.popitem(last=False)
        return broker

    def _slot(self, lp, cfg) -> dict:
        """One ticker per symbol per cycle slot (the pair's interval) when the market data supports it."""
        if self._lp_slots is None:
            import inspect

            self._lp_slots = "slot_ms" in inspect.signature(lp).parameters
        return {"slot_ms": int(cfg.interval_seconds or 60) * 1000} if self._lp_slots else {}

    def data_network(self, exchange: str, network: str) -> str:
        """Where the pair's market data comes from (paper reads public data of another network): shared
        candles and indicators are keyed by it, so paper and live pairs of a symbol share one series."""
        dn = getattr(self.hub, "data_network", None)
        return dn(exchange, network) if dn is not None else network

    def prefetch(self, now_ms: int, workers: int = 8) -> int:
        """Fetch, right after a candle closes, the candles and the slot's price of every stream the pairs
        use, so the cycles that follow find them ready instead of each stream's first cycle fetching while
        the others of that stream wait (with 40 streams behind one host's rate limit, seconds of waiting
        at the start of every minute). Returns the number of streams refreshed."""
        from concurrent.futures import ThreadPoolExecutor

        md = self.hub.market_data
        lp = getattr(md, "last_price", None)
        streams = set(self.streams.values())
        if not streams:
            return 0

        def one(stream) -> None:
            exchange, net, symbol, timeframe, interval = stream
            try:
                md.candles(exchange, net, symbol, timeframe, self.candle_limit)
                slot = interval * 1000
                if lp is not None and self._lp_slots and now_ms % slot < 60_000:
                    lp(exchange, net, symbol, slot_ms=slot)
            except Exception as exc:  # noqa: BLE001 - the pair's own cycle retries and reports it
                log.debug("prefetch of %s %s failed: %s", exchange, symbol, exc)

        with ThreadPoolExecutor(max(1, min(workers, len(streams))), thread_name_prefix="prefetch") as pool:
            list(pool.map(one, sorted(streams)))
        return len(streams)

    # -------------------------------------------------------------- reconcile

    def reconcile_pending(self, config_id: int | None = None, now_ms: int | None = None) -> dict:
        """Settle pending intents (all, or one pair's). Returns counts per outcome."""
        import time

        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        q = Order.select().where(Order.status == "pending")
        if config_id is not None:
            q = q.where(Order.config == config_id)
        counts = {"filled": 0, "failed": 0, "pending": 0, "error": 0}
        for order in q.order_by(Order.id):
            try:
                cred = self.credential(order.user_id, order.exchange)
                if order.network and order.network != (cred.network if cred is not None else "paper"):
                    # sent on another network than the one connected now: a lookup here cannot see it
                    # (and must not mark it failed); it waits until that network is connected again
                    counts["pending"] += 1
                    continue
                broker = self.broker_for(order.user_id, order.exchange, cred)
                counts[reconcile_order(order, broker, now_ms)] += 1
            except Exception:  # noqa: BLE001 - one bad intent must not block the others
                log.exception("reconcile of order %s failed", order.client_order_id)
                counts["error"] += 1
        return counts

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
        self.streams[cfg.id] = (cfg.exchange, data_net, cfg.symbol, cfg.timeframe, int(cfg.interval_seconds or 60))
        candles = md.candles(cfg.exchange, data_net, cfg.symbol, cfg.timeframe, self.candle_limit)
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
        lp = getattr(md, "last_price", None)
        if lp is not None:
            try:
                last_price = float(lp(cfg.exchange, data_net, cfg.symbol, **self._slot(lp, cfg)))
            except ExchangeError:
                raise
            except Exception:  # noqa: BLE001 - fall back to the last close
                last_price = None
        if last_price is None and candles:
            last_price = candles[-1].close

        settings = core.PairSettings.from_config(cfg, broker.rules(cfg.symbol))

        # 3. decision, only on a newly closed candle
        decision = None
        decision_row = None
        if since:
            decider = self.decider_for(cfg.decider)
            ind = self.indicators.get(cfg.exchange, data_net, cfg.symbol, cfg.timeframe, candles)
            px = Decimal(repr(last_price)) if last_price is not None else book.last_price or ZERO
            equity = book.cash + book.holdings * px if px else book.equity
            ctx = DecisionContext(
                symbol=cfg.symbol,
                timeframe=cfg.timeframe,
                candles=candles,
                indicators=ind,
                position=PositionView(book.holdings, book.entry_price) if book.in_position else None,
                cash=book.cash,
                equity=equity,
                last_price=px,
            )
            decision = decider.decide(ctx)

        # 4. pure core: exits, breaker, sizing
        prev_day, prev_start = book.day, book.day_start_equity
        res = core.step(book, since, decision, settings, now_ms, last_price)
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
        if changed or record or res.trip is not None or res.breaker_expired or res.rolled_day is not None:
            changed.update(updated_at=now, last_cycle_at=now)
            with write_tx():
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
            if req.side == "buy" and self._user_paused(cfg, now, now_ms):
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
        """The network a position was opened on (its last buy's order). Fixed once known: cached."""
        with self._locks_lock:
            hit = self._pos_networks.get(position_id)
        if hit is not None:
            return hit
        found = (
            Order.select(Order.network)
            .join(Trade, on=(Trade.order == Order.id))
            .where((Trade.position == position_id) & (Trade.side == "buy"))
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
            fence()  # no intent (and so no order) unless this process holds the instance lease
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
            if req.side == "buy":
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
            book_order_fill(order, fill, now_ms, settings, decision if req.side == "buy" else None)
            order_filled(cfg, fill)
            return True
        with write_tx():
            Order.update(
                status="canceled" if fill.status == "canceled" else "failed", updated_at=now
            ).where((Order.id == order.id) & (Order.status == "pending")).execute()
        order_failed(cfg, req, coid, f"nothing filled ({fill.status})")
        return False

    def _user_paused(self, cfg, now, now_ms) -> bool:
        """User-scope breaker: evaluate over all the user's pairs before opening a position."""
        user = User.get_by_id(cfg.user_id)
        if user.breaker_until is not None:
            if user.breaker_until > now:
                return True
            with write_tx():
                n = (
                    User.update(breaker_until=None, breaker_reason=None)
                    .where((User.id == user.id) & (User.breaker_until == user.breaker_until))
                    .execute()
                )
                if n:
                    record_reset(user.id, None, None, "user", "cooldown over", now)
            return False
        trip = self._evaluate_user(user, now)
        if trip is None:
            return False
        until_ms = risk.breaker_until_ms(now_ms, self.user_limits.cooldown_minutes)
        with write_tx():
            User.update(breaker_until=ms_to_dt(until_ms), breaker_reason=f"{trip.kind}: {trip.detail}").where(
                User.id == user.id
            ).execute()
            record_trip(user, "user", trip, until_ms, now)
        return True

    def _evaluate_user(self, user: User, now: dt.datetime) -> risk.Trip | None:
        lim = self.user_limits
        since = (
            RiskEvent.select(RiskEvent.created_at)
            .where((RiskEvent.user == user.id) & (RiskEvent.scope == "user"))
            .order_by(RiskEvent.id.desc())
            .scalar()
        )
        # A user-scope rule only adds something when it spans several pairs: a streak or a daily loss of
        # one pair alone is the pair breaker's job (and would otherwise trip both scopes at once).
        losses = 0
        if lim.max_consecutive_losses:
            q = Trade.select(Trade.pnl, Trade.config).where(
                (Trade.user == user.id) & (Trade.side == "sell") & Trade.pnl.is_null(False)
            )
            if since is not None:
                q = q.where(Trade.executed_at > since)
            pairs = set()
            for t in q.order_by(Trade.id.desc()).limit(lim.max_consecutive_losses):
                if t.pnl < ZERO:
                    losses += 1
                    pairs.add(t.config_id)
                else:
                    break
            if len(pairs) < 2:
                losses = 0
        budget = ZERO
        day_loss = ZERO
        today = now.date()
        n_states = 0
        for st in UserState.select(UserState.balance, UserState.daily_pnl, UserState.daily_pnl_date).where(
            UserState.user == user.id
        ):
            n_states += 1
            budget += st.balance or ZERO
            if st.daily_pnl_date == today:
                day_loss -= st.daily_pnl or ZERO
        if n_states < 2 or (since is not None and since.date() == today):
            day_loss = ZERO  # one pair: the pair breaker covers it; already tripped today: don't repeat
        return risk.evaluate_breaker(
            lim,
            consecutive_losses=losses,
            budget=budget,
            equity=ZERO - day_loss,
            day_ref_equity=ZERO,
            peak_ref_equity=None,
        )

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
