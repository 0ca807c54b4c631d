"""Booking a fill: order status, trade, position, user_state, the decision's outcome and the outbox events in
ONE transaction, guarded by `status = 'pending'` so that a fill is booked at most once."""

from __future__ import annotations

from .. import events
from ..db import write_tx
from ..models import (
    AIDecision,
    Order,
    Position,
    Trade,
    UserConfig,
    UserState,
)
from . import core
from .accounting import DAY_MS
from .book_rows import (
    ZERO,
    _pct,
    load_book,
    ms_to_dt,
    open_position,
    position_fields,
    save_state,
)
from .breaker import record_trip

# ---------------------------------------------------------------- booking


def book_order_fill(
    order: Order, fill, now_ms: int, settings: core.PairSettings | None = None, decision=None,
    note: str | None = None,
) -> core.FillOutcome | None:
    """Book `fill` of the pending `order`: ONE transaction for order, trade, position, user_state,
    decision outcome and events. Returns None if the order was already booked (or not pending). `note`: a
    sentence for the close's notification (where an outside close's numbers come from)."""
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
        cursor = book.last_funding_ms
        out = core.book_fill(book, fill, settings, now_ms, decision)
        if book.futures and order.network != "paper":
            # live: only the venue's payments move the funding cursor (engine/futures_funding.py), so a funding
            # time of a position closed just before this one opened is still booked when the venue reports it
            book.last_funding_ms = cursor
        pnl_pct = None
        opening = out.pnl is None  # spot: a buy; futures: a fill that opens or grows the position
        if opening:
            if pos is None:
                pos = Position.create(
                    user=cfg.user_id,
                    config=cfg.id,
                    exchange=cfg.exchange,
                    symbol=cfg.symbol,
                    side=book.side if book.futures else cfg.side,
                    leverage=book.leverage if book.futures else cfg.leverage,
                    **{k: v for k, v in position_fields(book).items() if k not in ("side", "leverage")},
                    decision=order.decision_id,
                    opened_at=now,
                )
            else:
                Position.update(**position_fields(book)).where(Position.id == pos.id).execute()
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
                    **({"funding": book.position_funding} if book.futures else {}),
                ).where(Position.id == pos.id).execute()
                if pos.decision_id:
                    AIDecision.update(
                        outcome="profitable" if total > ZERO else "loss",
                        profitable=total > ZERO,
                        pnl=total,
                    ).where(_decision_and_agreeing_parts(pos.decision_id)).execute()
            else:
                extra = {"margin": book.margin} if book.futures else {}
                Position.update(
                    amount=book.holdings, cost_basis=book.cost_basis, realized_pnl=total, **extra
                ).where(Position.id == pos.id).execute()
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
        if book.futures:  # notifications name the side and the leverage
            base.update(side=book.side if opening else (pos.side if pos is not None else book.side),
                        leverage=book.leverage if opening else (pos.leverage if pos is not None else book.leverage))
        if opening:
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
                "liquidation" if order.reason == "liquidation" else "trade_closed",
                {
                    **base,
                    "amount": trade_amount,
                    "price": fill.price,
                    "pnl": out.pnl,
                    "pnl_percent": pnl_pct,
                    "reason": order.reason or "signal",
                    **({"fee": fill.fee_quote, "note": note} if note else {}),
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
