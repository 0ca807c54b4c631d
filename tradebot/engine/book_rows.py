"""A pair's PairBook to and from its rows (user_state, the open position), and the time conversions the
engine uses (ms since the epoch, UTC day numbers)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import peewee as pw

from ..db import write_tx
from ..models import (
    Position,
    UserConfig,
    UserState,
    utcnow,
)
from .accounting import PairBook

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
    if getattr(cfg, "market_type", "spot") == "futures":
        b.futures = True
        b.leverage = int(cfg.leverage or 1)
        b.funding_paid = state.funding_paid or ZERO
        b.last_funding_ms = state.last_funding_ts or 0
        if position is not None:
            b.side = position.side or "long"
            b.leverage = int(position.leverage or 1)
            b.margin = position.margin or ZERO
            b.position_funding = position.funding or ZERO
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
        "funding_paid": book.funding_paid,
        "last_funding_ts": book.last_funding_ms or None,
        "updated_at": now,
    }


def position_fields(book: PairBook) -> dict:
    """The open position's columns the book owns (amount, prices, futures margin and funding)."""
    fields = {
        "amount": book.holdings,
        "entry_price": book.entry_price,
        "cost_basis": book.cost_basis,
        "stop_loss_price": book.stop_loss,
        "take_profit_price": book.take_profit,
    }
    if book.futures and book.entry_price is not None:
        from ..risk_futures import liquidation_price

        fields.update(side=book.side, leverage=book.leverage, margin=book.margin, funding=book.position_funding,
                      liquidation_price=liquidation_price(book.entry_price, book.leverage, book.side))
    return fields


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


def ensure_active_states(batch: int = 200, should_stop=lambda: False) -> int:
    """Create the missing user_states rows of every trading pair in a few multi-row INSERTs (what each
    pair's first cycle would otherwise do in a transaction of its own: 20,000 of them after a fresh start
    of 20,000 pairs is a minute of backlog). Returns the number of rows created."""
    from ..models import ExchangeCredential

    rows = (
        UserConfig.select(UserConfig.id, UserConfig.user, UserConfig.budget, ExchangeCredential.network)
        .join(UserState, pw.JOIN.LEFT_OUTER, on=(UserState.config == UserConfig.id))
        .switch(UserConfig)
        .join(ExchangeCredential, pw.JOIN.LEFT_OUTER,
              on=((ExchangeCredential.user == UserConfig.user) & (ExchangeCredential.exchange == UserConfig.exchange)))
        .where((UserConfig.is_trading == True) & UserState.id.is_null())  # noqa: E712
        .tuples()
    )
    now = utcnow()
    new = []
    for config_id, user_id, budget, network in rows:
        b = Decimal(budget)
        new.append({"user": user_id, "config": config_id, "status": "stopped", "mode": network or "paper",
                    "balance": b, "cash": b, "equity": b, "peak_equity": b, "updated_at": now})
    for i in range(0, len(new), batch):
        if should_stop():
            break
        with write_tx():
            UserState.insert_many(new[i:i + batch]).on_conflict_ignore().execute()
    return len(new)


def open_position(config_id: int) -> Position | None:
    return (
        Position.select()
        .where((Position.config == config_id) & (Position.status == "open"))
        .order_by(Position.id.desc())
        .first()
    )


def _pct(pnl: Decimal, base: Decimal) -> Decimal | None:
    return (pnl * HUNDRED / base).quantize(Decimal("0.01")) if base else None
