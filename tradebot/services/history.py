"""/trades and /export: the user's round trips and fills, read from their own rows only."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal

import peewee as pw

from ..models import Order, Position, Trade, User, UserConfig
from .chat_rows import last_closed_positions, position_fees
from .views import NotFound

MAX_TRADES = 50
EXPORT_COLUMNS = [
    "record", "time_utc", "exchange", "symbol", "side", "amount", "price", "cost", "fee", "fee_currency",
    "funding", "pnl", "pnl_percent", "reason", "client_order_id", "opened_utc", "closed_utc", "entry_price",
    "exit_price", "round_trip_id",
]


@dataclass(frozen=True)
class RoundTripView:
    symbol: str
    exchange: str
    side: str  # long | short
    amount: Decimal
    entry_price: Decimal
    exit_price: Decimal | None
    pnl: Decimal | None
    pnl_percent: Decimal | None
    fees: Decimal
    reason: str | None
    opened_at: dt.datetime
    closed_at: dt.datetime | None


def _iso(value: dt.datetime | None) -> str:
    return value.replace(microsecond=0).isoformat(sep=" ") if value is not None else ""


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class HistoryMixin:
    """Trade history use cases (part of Services)."""

    def _closed_positions(self, user: User, configs: list[UserConfig] | None):
        q = Position.select().where((Position.user == user.id) & (Position.status == "closed"))
        if configs is not None:
            q = q.where(Position.config.in_([c.id for c in configs]))
        return q

    def round_trips(self, user: User, configs: list[UserConfig] | None = None, n: int = 10) -> list[RoundTripView]:
        """The last `n` closed positions, newest first, with the fees of all their fills."""
        n = max(1, min(int(n), MAX_TRADES))
        ids = None if configs is None else [c.id for c in configs]
        positions = last_closed_positions(user.id, ids, n)  # prepared statements: /trades is a chat command
        fees = position_fees(user.id, [p.id for p in positions])
        out = []
        for p in positions:
            out.append(RoundTripView(
                symbol=p.symbol, exchange=p.exchange, side=getattr(p, "side", None) or "long",
                amount=p.amount, entry_price=p.entry_price, exit_price=p.exit_price,
                pnl=p.realized_pnl, pnl_percent=_percent(p.realized_pnl, p.cost_basis, fees.get(p.id)),
                fees=fees.get(p.id, Decimal(0)), reason=p.close_reason, opened_at=p.opened_at,
                closed_at=p.closed_at,
            ))
        return out

    def export_csv(self, user: User, configs: list[UserConfig] | None = None) -> tuple[str, bytes]:
        """(file name, CSV bytes): every fill and every round trip of the user (or of the given pairs)."""
        fills = (Trade.select(Trade, Order.fee_currency.alias("fee_currency"))
                 .join(Order, pw.JOIN.LEFT_OUTER, on=(Trade.order == Order.id))
                 .where(Trade.user == user.id))
        if configs is not None:
            fills = fills.where(Trade.config.in_([c.id for c in configs]))
        fills = list(fills.order_by(Trade.executed_at, Trade.id).objects())
        trips = list(self._closed_positions(user, configs).order_by(Position.closed_at, Position.id))
        if not fills and not trips:
            raise NotFound("Nothing to export yet: no fills.")
        fees = position_fees(user.id, None)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(EXPORT_COLUMNS)
        for t in fills:
            w.writerow(["fill", _iso(t.executed_at), t.exchange, t.symbol, t.side, _text(t.amount), _text(t.price),
                        _text(t.cost), _text(t.fee), _text(getattr(t, "fee_currency", None)),
                        _text(getattr(t, "funding", None)), _text(t.pnl), _text(t.pnl_percent), _text(t.reason),
                        _text(t.client_order_id), "", "", "", "", _text(t.position_id)])
        for p in trips:
            w.writerow(["round_trip", _iso(p.closed_at), p.exchange, p.symbol, getattr(p, "side", None) or "long",
                        _text(p.amount), "", _text(p.cost_basis), _text(fees.get(p.id)),
                        "", _text(getattr(p, "funding", None)), _text(p.realized_pnl),
                        _text(_percent(p.realized_pnl, p.cost_basis, fees.get(p.id))), _text(p.close_reason), "",
                        _iso(p.opened_at), _iso(p.closed_at), _text(p.entry_price), _text(p.exit_price), p.id])
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
        scope = "all" if configs is None or len(configs) != 1 else configs[0].symbol.replace("/", "").replace(":", "-")
        return f"tradebot-{scope}-{stamp}.csv", buf.getvalue().encode("utf-8")


def _percent(pnl: Decimal | None, cost: Decimal | None, _fees) -> Decimal | None:
    if pnl is None or not cost:
        return None
    return (pnl * 100 / cost).quantize(Decimal("0.01"))
