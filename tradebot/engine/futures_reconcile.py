"""Reconciliation of a live futures pair: the pair's book against the exchange's position, every cycle.

In one-way mode the venue holds ONE position per (account, symbol), and that position is the pair's. When it
differs from the book (a manual close or trade, a liquidation, auto-deleveraging), the bot books its own position
as closed outside the bot (reason "external") from the venue's own fills of the close (price and fee of the
account's trades since the position's entry that were not the bot's orders); when there are none (a liquidation
the venue reports without a fill), at the current mark price without a fee, and says so in the notification and
the trade row (reason "external: no fill, mark price"). It then stops the pair and tells the user once, in words.
It never trades over a position it did not open. Runs only when no order of the pair is unsettled (an order in
flight explains a difference).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from ..db import write_tx
from ..exchange.base import Fill
from ..models import Order, UserConfig
from .book_rows import dt_to_ms, ms_to_dt, new_client_order_id, open_position
from .booking import book_order_fill

log = logging.getLogger(__name__)
EXTERNAL = "external"
EXTERNAL_AT_MARK = "external: no fill, mark price"  # fits positions.close_reason / trades.reason (32)
ZERO = Decimal(0)
FEE_DP = Decimal("0.00000001")


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
        mark = price if price is not None and price > ZERO else book.last_price or book.entry_price
        fill, how = _closing_fill(cfg, broker, book, mark, now_ms)
        pnl = _book_external_close(cfg, book, network, fill, settings, now_ms, how)
        what = (f"{cfg.symbol}: {name} shows {theirs}, but the bot held {side.upper()} {size.normalize():f} {base}: the "
                f"position was closed or changed outside the bot (manual trade, liquidation or auto-deleveraging). "
                f"Booked as closed outside the bot at {fill.price.normalize():f}, {how} (PnL {pnl:.2f} USDT, "
                f"fee {fill.fee_quote.normalize():f} USDT), and stopped the pair.")
        if venue.side != "flat":
            what += f" The {theirs} on {name} is not the bot's: manage it there."
    else:
        what = (f"{cfg.symbol}: {name} shows {theirs} that the bot did not open. The pair is stopped so the bot "
                f"never trades over it: close it on {name} (or keep it), then /start_trading.")
    UserConfig.update(is_trading=False).where(UserConfig.id == cfg.id).execute()
    log.warning("futures position mismatch on pair %s (%s/%s): book %s %s, exchange %s %s; pair stopped",
                cfg.id, cfg.exchange, network, side, size, venue.side, venue.size)
    return what


def _closing_fill(cfg, broker, book, mark: Decimal, now_ms: int) -> tuple[Fill, str]:
    """The close as the venue filled it: the account's fills on the closing side since the position's entry
    that are not the bot's own orders (price averaged, fee prorated to the book's size); the part no fill
    covers at the mark price. -> (fill, plain words saying where the numbers come from)."""
    side = "sell" if book.side == "long" else "buy"
    size = book.holdings
    name = cfg.exchange.capitalize()
    pos = open_position(cfg.id)
    fills = []
    fetch = getattr(broker, "account_fills", None)
    if pos is not None and fetch is not None:
        opened = dt_to_ms(pos.opened_at)
        mine = Order.select(Order.exchange_order_id, Order.client_order_id).where(
            (Order.config == cfg.id) & (Order.created_at >= ms_to_dt(opened - 60_000)))
        ids = {o.exchange_order_id for o in mine if o.exchange_order_id} | {o.client_order_id for o in mine}
        try:
            fills = [f for f in fetch(cfg.symbol, opened, now_ms)
                     if f.side == side and f.order_id not in ids and f.client_order_id not in ids]
        except Exception as exc:  # noqa: BLE001 - the history is not available: the mark price, said plainly
            log.warning("fills of pair %s on %s unavailable: %s", cfg.id, cfg.exchange, exc)
    got = sum((f.amount for f in fills), ZERO)
    if got >= size > ZERO:
        cost = sum((f.amount * f.price for f in fills), ZERO)
        px = cost / got
        fee = (sum((f.fee for f in fills), ZERO) * size / got).quantize(FEE_DP)
        how = f"the average of {name}'s {len(fills)} fill(s) of the close"
    elif got > ZERO:
        cost = sum((f.amount * f.price for f in fills), ZERO) + (size - got) * mark
        px = cost / size
        fee = sum((f.fee for f in fills), ZERO)
        how = (f"{got.normalize():f} of it from {name}'s fills, the rest ({(size - got).normalize():f}) at the mark "
               f"price {mark.normalize():f} without a fee")
    else:
        px, fee = mark, ZERO
        how = (f"no fill of the close found on {name} (e.g. a liquidation reported without one): at the mark "
               f"price, fee unknown")
    ts = max((f.time_ms for f in fills), default=now_ms)
    coid = new_client_order_id(cfg.id)
    fill = Fill(coid, fills[-1].order_id if fills else None, cfg.symbol, side, "filled", size, size * px, px, fee,
                "USDT", size, size * px, fee, ts)
    return fill, how


def _book_external_close(cfg, book, network: str, fill: Fill, settings, now_ms: int, how: str) -> Decimal:
    """The closing fill of the whole book position through the normal booking path, so the trade, the position,
    the PnL and the notifications are those of any close (reason "external", or EXTERNAL_AT_MARK when no fill
    of the venue was found)."""
    reason = EXTERNAL if fill.exchange_order_id else EXTERNAL_AT_MARK
    now = ms_to_dt(now_ms)
    with write_tx():
        order = Order.create(user=cfg.user_id, config=cfg.id, client_order_id=fill.client_order_id,
                             exchange=cfg.exchange, network=network, symbol=cfg.symbol, side=fill.side,
                             amount=fill.amount, reason=reason, created_at=now, updated_at=now,
                             error=f"closed outside the bot; booked {how}"[:500])
    out = book_order_fill(order, fill, now_ms, settings, note=f"Closed outside the bot; booked {how}.")
    return out.pnl if out is not None and out.pnl is not None else ZERO
