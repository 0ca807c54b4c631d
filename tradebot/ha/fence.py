"""The fencing check of an order intent, per pair in HA mode.

`fence_pair(config_id)` is called by the engine inside the transaction that commits an order intent. With
an HA worker running (PostgreSQL), the pair's lease row is locked and must be this worker's, with the token
it claimed, and valid for at least a third of the ttl more; otherwise the intent rolls back and no order is
sent. Another worker can only claim an EXPIRED lease, and its claim skips a row an intent holds locked
(SKIP LOCKED) until that intent committed, so an intent that passed the fence was committed while no
other worker could trade the pair.
Without an HA worker (SQLite, tests, tools) the single-instance lease decides (instance_lock.fence()).
"""

from __future__ import annotations

import logging

from .. import instance_lock
from ..instance_lock import LeaseLost

log = logging.getLogger("tradebot.ha")

_active = None  # the HAWorker of this process (set by HAWorker.start)


class PairLeaseLost(LeaseLost):
    user_message = (
        "No order sent: this pair moved to another bot worker (its lease here was lost); it trades there now."
    )


def active():
    return _active


def set_active(worker) -> None:
    global _active
    _active = worker


def fence_pair(config_id: int) -> None:
    worker = _active
    if worker is None:
        instance_lock.fence()
        return
    if not worker.fence_ok(config_id):
        log.warning("fence: refusing an order intent of pair %s (its lease is not ours or not live)", config_id)
        raise PairLeaseLost()
