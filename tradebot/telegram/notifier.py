"""Drains the Notification outbox (engine events) to the pairs' owners.

At-least-once: a row is marked `sent_at` only after Telegram accepted the message, so nothing is lost
when the process dies between the engine's emit and the delivery (a crash right after sending may
deliver one event twice). Every worker writes rows; only the Telegram leader sends them (issue 17), and
it claims each row (`claimed_by`) in the database right before sending it, so two leaders (one that has
not yet noticed it lost the lease) never both send a row. A claim older than CLAIM_SECONDS (its leader
died) may be taken over. /notify off silences routine events; events that need the user's action
(circuit breaker, pair errors) are always delivered. Events go out in the order they were made, the daily
summaries after any other event waiting.
"""

from __future__ import annotations

import logging
import threading

import peewee as pw

from .. import db as dbmod
from ..models import Notification, User, utcnow
from ..writer_lock import mark_urgent
from . import format as fmt
from .inbox import db_now_sql
from .sender import SendFailed

log = logging.getLogger("tradebot.telegram.notifier")

MAX_ATTEMPTS = 20
CLAIM_SECONDS = 30


def claim(row_id: int, holder: str) -> bool:
    """Take the row for sending: unclaimed, ours, or claimed by a leader that is gone (stale claim)."""
    # plain SQL: runs for every notification, and peewee built it with more CPU than the send itself
    now, now_params = db_now_sql()
    stale, stale_params = db_now_sql(-CLAIM_SECONDS)
    p = dbmod.db.param
    cursor = dbmod.db.execute_sql(
        f"UPDATE notifications SET claimed_by = {p}, claimed_at = {now} WHERE id = {p} AND sent_at IS NULL "
        f"AND (claimed_by IS NULL OR claimed_by = {p} OR claimed_at < {stale})",
        [holder, *now_params, row_id, holder, *stale_params])
    return cursor.rowcount == 1


def mark_sent(row_id: int, attempts: int) -> None:
    now, params = db_now_sql()
    p = dbmod.db.param
    dbmod.db.execute_sql(f"UPDATE notifications SET sent_at = {now}, attempts = {p} WHERE id = {p}",
                         [*params, attempts, row_id])


def deliver_pending(sender, limit: int = 100, should_stop=None, chart_for=None, holder: str | None = None) -> int:
    """One pass over the outbox. Returns the number of rows handled (sent or skipped). `should_stop`:
    checked before each message, so a stop never waits for the rest of a batch (100 sends of ~50 ms).
    `chart_for(user)` -> ChartImage: the total equity chart a daily summary carries for users who asked
    (/notify chart on); best effort, the summary text counts as the delivery. `holder`: claim each row
    before sending it (see the module doc); None only where no other sender can exist (tests, tools)."""
    # Events in order of creation, the daily summaries after them: at midnight 4,000 summaries take ~100 s
    # to send, and a stop-loss or circuit-breaker notice made meanwhile must not wait behind them.
    summaries_last = pw.Case(None, [(Notification.kind == "daily_summary", 1)], 0)
    rows = list(
        Notification.select(Notification, User)
        .join(User)
        .where(Notification.sent_at.is_null())
        .order_by(summaries_last, Notification.id)
        .limit(limit)
    )
    done = 0
    for row in rows:
        if should_stop is not None and should_stop():
            break
        if holder is not None and not claim(row.id, holder):
            continue  # another leader is sending it
        user = row.user
        skip = user.status == "blocked" or (not user.notify and row.kind not in fmt.ALWAYS_DELIVERED)
        if not skip:
            try:
                sender.send(user.telegram_id, fmt.event(row.kind, row.payload))
                if chart_for is not None and row.kind == "daily_summary" and user.notify_chart:
                    _send_chart(sender, user, chart_for)
            except SendFailed as exc:
                attempts = row.attempts + 1
                give_up = exc.permanent or attempts >= MAX_ATTEMPTS
                Notification.update(attempts=attempts, sent_at=utcnow() if give_up else None).where(
                    Notification.id == row.id
                ).execute()
                log.warning(
                    "notification %s to user %s failed (%s)%s",
                    row.id,
                    user.id,
                    exc,
                    ", giving up" if give_up else "",
                )
                if not give_up:
                    return done  # Telegram trouble: try again on the next pass, in order
                continue
        mark_sent(row.id, row.attempts + 1)
        done += 1
    return done


def _send_chart(sender, user, chart_for) -> None:
    try:
        image = chart_for(user)
        sender.send_photo(user.telegram_id, image.png, fmt.chart_caption(image.caption))
    except Exception as exc:  # no candles, no matplotlib, Telegram trouble: the summary went out anyway
        log.info("daily equity chart for user %s not sent: %s", user.id, type(exc).__name__)


class Notifier:
    def __init__(self, sender, interval: float = 1.0, chart_for=None, holder: str | None = None):
        self.sender = sender
        self.holder = holder
        self.chart_for = chart_for
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tg-notifier", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        # Two writes per message (claim, sent): as an unmarked writer behind 16 cycle threads each waited
        # ~0.1 s at 20,000 pairs, and 4,000 daily summaries went out at 3.5 a second (writer_lock.py).
        mark_urgent()
        while not self._stop.is_set():
            try:
                while not self._stop.is_set() and deliver_pending(
                        self.sender, should_stop=self._stop.is_set, chart_for=self.chart_for,
                        holder=self.holder) >= 100:
                    pass
            except Exception:
                log.exception("notifier pass failed")
            self._wake.wait(self.interval)
            self._wake.clear()
