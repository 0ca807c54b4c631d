"""Reconciliation of a live futures pair: the pair's book against the exchange's position, every cycle.

In one-way mode the venue holds ONE position per (account, symbol), and that position is the pair's. When it
differs from the book (a manual close or trade, a liquidation, auto-deleveraging), the bot cannot know what
happened in between: it books its own position as closed outside the bot at the current price (reason
"external"), stops the pair and tells the user once, in words. It never trades over a position it did not
open. Runs only when no order of the pair is unsettled (an order in flight explains a difference).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from ..db import write_tx
from ..exchange.base import Fill
from ..models import Order, UserConfig
from .book_rows import ms_to_dt, new_client_order_id
from .booking import book_order_fill

log = logging.getLogger(__name__)
EXTERNAL = "external"
ZERO = Decimal(0)


def check_position(cfg, broker, book, network: str, price: Decimal | None, settings, now_ms: int) -> str | None:
    """None when the exchange agrees with the book; else the booked outcome as a one-line message for the
    user (the pair is then stopped)."""
    venue = broker.futures_position(cfg.symbol)
    side = book.side if book.in_position else "flat"
    size = book.holdings if book.in_position else ZERO
    if (venue.side, venue.size) == (side, size):
        return None
    name, base = cfg.exchange.capitalize(), cfg.symbol.split("/")[0]
    theirs = "no position" if venue.side == "flat" else f"{venue.side.upper()} {venue.size.normalize():f} {base}"
    if book.in_position:
        px = price if price is not None and price > ZERO else book.last_price or book.entry_price
        pnl = _book_external_close(cfg, book, network, px, settings, now_ms)
        what = (f"{cfg.symbol}: {name} shows {theirs}, but the bot held {side.upper()} {size.normalize():f} {base}: the "
                f"position was closed or changed outside the bot (manual trade, liquidation or auto-deleveraging). "
                f"Booked as closed outside the bot at ~{px:f} (PnL ~{pnl:.2f} USDT) and stopped the pair.")
        if venue.side != "flat":
            what += f" The {theirs} on {name} is not the bot's: manage it there."
    else:
        what = (f"{cfg.symbol}: {name} shows {theirs} that the bot did not open. The pair is stopped so the bot "
                f"never trades over it: close it on {name} (or keep it), then /start_trading.")
    UserConfig.update(is_trading=False).where(UserConfig.id == cfg.id).execute()
    log.warning("futures position mismatch on pair %s (%s/%s): book %s %s, exchange %s %s; pair stopped",
                cfg.id, cfg.exchange, network, side, size, venue.side, venue.size)
    return what


def _book_external_close(cfg, book, network: str, px: Decimal, settings, now_ms: int) -> Decimal:
    """A closing fill of the whole book position at `px`, no fee known, through the normal booking path, so
    the trade, the position, the PnL and the notifications are those of any close (reason "external")."""
    side = "sell" if book.side == "long" else "buy"
    amount = book.holdings
    coid = new_client_order_id(cfg.id)
    now = ms_to_dt(now_ms)
    with write_tx():
        order = Order.create(user=cfg.user_id, config=cfg.id, client_order_id=coid, exchange=cfg.exchange,
                             network=network, symbol=cfg.symbol, side=side, amount=amount, reason=EXTERNAL,
                             created_at=now, updated_at=now, error="closed outside the bot")
    fill = Fill(coid, None, cfg.symbol, side, "filled", amount, amount * px, px, ZERO, None, amount, amount * px,
                ZERO, now_ms)
    out = book_order_fill(order, fill, now_ms, settings)
    return out.pnl if out is not None and out.pnl is not None else ZERO

