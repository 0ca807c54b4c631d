"""Live funding of a futures pair: what the venue settled, booked once per (pair, funding time).

The pair's cursor (`user_states.last_funding_ts`) is the funding time up to which everything is settled. When a
funding time passes, the pair looks up at which funding times since its cursor it held a position (its
positions' open and close times: a position closed since still counts) and, for those, reads the venue's funding
history from the cursor on, page by page until caught up (bounded per cycle), and books every payment of a
time it held a position; the cursor moves in the same transaction as the booking. While a payment is awaited
the venue is asked at most every FUNDING_ASK_MS; a time it reports nothing for is passed over once it reports
a later one, or after FUNDING_GIVE_UP_MS.
"""

from __future__ import annotations

from decimal import Decimal

from ..models import Position
from ..risk_futures import funding_time
from .book_rows import dt_to_ms, ms_to_dt
from .futures import FUNDING_ASK_MS, funding_times_held, settle_venue_funding

SINCE_SLACK_MS = 60_000  # a venue may stamp a payment a little before the funding time


def venue_funding(asked: dict, cfg, broker, book, now_ms: int, mark: Decimal | None) -> list[tuple] | None:
    """[(position id, side, paid + / received -)] booked into `book` (cursor moved), [] when only the cursor
    moved, None when nothing is due or the venue was asked too recently. `asked`: config id -> ms of the
    last request (the cycle runner's, in memory)."""
    cursor = book.last_funding_ms
    if funding_time(now_ms) <= cursor:
        return None
    q = Position.select(Position.id, Position.side, Position.opened_at, Position.closed_at).where(
        (Position.config == cfg.id) & (Position.side.in_(("long", "short"))))
    if cursor:
        q = q.where(Position.closed_at.is_null() | (Position.closed_at >= ms_to_dt(cursor)))
    rows = list(q.order_by(Position.opened_at, Position.id))
    spans = [(dt_to_ms(p.opened_at), dt_to_ms(p.closed_at) if p.closed_at else None) for p in rows]
    due = funding_times_held(cursor, now_ms, spans)
    if not due:
        book.last_funding_ms = max(cursor, funding_time(now_ms))
        return []
    last = asked.get(cfg.id)
    if last is not None and now_ms - last < FUNDING_ASK_MS and due[-1] <= last:
        return None
    since = max(cursor + 1, due[0] - SINCE_SLACK_MS)
    payments, covered = broker.funding_payments(cfg.symbol, since, now_ms)
    if covered >= now_ms:
        asked[cfg.id] = now_ms
    else:  # the page bound stopped the read: the next cycle reads on
        asked.pop(cfg.id, None)
    booked = settle_venue_funding(book, payments, covered, spans, now_ms, mark)
    return [(rows[i].id, rows[i].side, pay) for i, pay in booked]
