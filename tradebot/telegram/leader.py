"""Which process talks to Telegram (issue 17): the holder of the 'telegram' lease, the leader.

On PostgreSQL every `tradebot run` keeps trying to take the 'telegram' row of `instance_lock` (the
InstanceLease heartbeat: every ttl/6 s). The holder runs the Telegram front (polling through the inbox,
chat workers, the outbox notifier); the others never call the Bot API. On a loss, polling stops at once
(the chat work already taken is finished; a successor cannot take those updates twice, see inbox.py); on a
gain the front starts, first finishing what the previous leader left. A leader killed without a release
is replaced once its lease expires (ttl, `telegram.leader_lease_seconds`), or at the next beat when it
was a process of the same machine. On SQLite the only process is always the leader.
"""

from __future__ import annotations

import logging
import threading

from .. import db as dbmod
from ..instance_lock import InstanceLease, InstanceLocked
from ..models import InstanceLock
from .inbox import db_now

log = logging.getLogger("tradebot.telegram.leader")

LEASE_NAME = "telegram"
RETRY_SECONDS = 5.0  # a leader whose front failed to start (Telegram unreachable) tries again this often


class NotLeader(Exception):
    pass


class TelegramLeader:
    def __init__(self, url: str, ttl: float, start_front):
        self.start_front = start_front  # (holder, fence) -> BotHandle (telegram.bot.start_bot)
        self.sqlite = dbmod.parse_url(url).is_sqlite
        self.lease = None if self.sqlite else InstanceLease(
            url, ttl, name=LEASE_NAME, on_lost=self._on_lost, on_regained=self._wake_up)
        self.front = None
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tg-leader", daemon=True)

    @property
    def is_leader(self) -> bool:
        return self.sqlite or self.lease.held

    def start(self) -> None:
        """Start the front now if this process is (or can become) the leader: its errors raise, as a bad
        token should at start. Otherwise stand by: the heartbeat takes the lease when it frees."""
        if self.sqlite:
            self.front = self.start_front("local", None)
            return
        try:
            self.lease.acquire()
        except InstanceLocked:
            log.info("another process polls Telegram; standing by to take over")
        if self.lease.held:
            self.front = self.start_front(self.lease.holder, self.fence)
            log.info("telegram leader (lease token %s)", self.lease.token)
        self.lease.start_heartbeat()
        self._thread.start()

    def fence(self) -> None:
        """Raises NotLeader unless our 'telegram' lease is live (checked where updates are recorded)."""
        lease = self.lease
        if lease is None:
            return
        live = lease.held and InstanceLock.select().where(
            (InstanceLock.name == LEASE_NAME) & (InstanceLock.holder == lease.holder)
            & (InstanceLock.token == lease.token) & (InstanceLock.expires_at > db_now())
        ).exists()
        if not live:
            raise NotLeader("this process no longer holds the telegram lease")

    def stop(self) -> None:
        """Stops the front and releases the lease, so a standby takes over at its next beat."""
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(5)
        with self._mutex:
            self._stop_front()
        if self.lease is not None:
            self.lease.release()

    # ------------------------------------------------------------ lease events

    def _on_lost(self) -> None:
        """Heartbeat thread: stop polling at once (no getUpdates after this); the rest in _loop."""
        front = self.front
        if front is not None:
            front.poller.stopping.set()
        log.warning("lost the telegram lease: polling stopped")
        self._wake.set()

    def _wake_up(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(RETRY_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._mutex:
                held = self.lease.held
                if self.front is not None and (not held or not self.front.running):
                    self._stop_front()
                if held and self.front is None and not self._stop.is_set():
                    try:
                        self.front = self.start_front(self.lease.holder, self.fence)
                        log.warning("took over Telegram polling (telegram lease token %s)", self.lease.token)
                    except Exception as exc:  # noqa: BLE001 - Telegram unreachable: retry while leader
                        log.error("telegram front failed to start: %s; retrying in %.0f s", exc, RETRY_SECONDS)
        try:
            dbmod.db.close()
        except Exception:  # noqa: BLE001
            pass

    def _stop_front(self) -> None:
        front, self.front = self.front, None
        if front is not None:
            front.stop()
