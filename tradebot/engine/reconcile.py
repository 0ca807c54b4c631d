"""Reconciliation of pending order intents: each is looked up on the exchange by its client order id
(at start-up and at the start of every cycle of its pair): filled -> booked, absent -> failed."""

from __future__ import annotations

import logging

from ..db import write_tx
from ..models import (
    Order,
    UserConfig,
)
from . import core
from .book_rows import (
    WORKING,
    ZERO,
    dt_to_ms,
    ms_to_dt,
)
from .booking import book_order_fill
from .order_log import order_filled

log = logging.getLogger("tradebot.engine.cycle")  # the cycle's logger, as before the split


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


class PendingIntents:
    """Settling pending intents (part of CycleRunner)."""

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
