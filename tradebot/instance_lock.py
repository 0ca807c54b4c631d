"""One `tradebot run` per database: a lease with a fencing token.

The lease is the `instance_lock` row named 'run':

    holder       "<machine>:<pid>:<random>" of the process holding it; NULL when released
    token        fencing token, incremented on every acquisition
    since, heartbeat_at, expires_at
                 naive UTC; on PostgreSQL taken from the database's clock, so hosts need not agree

- `acquire()`: one conditional UPDATE takes the row only when the lease is free: released, expired, or
  held by a process of this same machine that no longer exists (a crashed run restarts at once instead
  of waiting out the lease). A second instance is refused while the first's lease lives.
- A heartbeat thread renews it every ttl/6 s (`... WHERE holder = me AND token = mine`). When a renewal
  finds the row taken, or no renewal succeeded for ttl - margin seconds (database unreachable), the
  lease is LOST: `on_lost` runs at once (the app pauses the engine), the admins get one notification
  through the outbox, and the thread keeps trying to acquire again (new token), then `on_regained`.
- `fence()`: the engine calls it inside the transaction that commits an order intent. It refuses
  (`LeaseLost`: the intent rolls back, nothing is sent) unless holder and token are ours and the lease
  still runs for at least `margin` (ttl/3) seconds. Another instance can only acquire an EXPIRED lease,
  so an intent that passed the fence was committed while no other instance could trade.
- SQLite: the process also holds an flock() on the database file itself, i.e. on its inode, whatever
  name, symlink or hard link it is opened by; nothing beside it can be deleted to defeat it. flock()
  rather than an fcntl() byte-range lock: Linux keeps flock() locks apart from the fcntl() locks SQLite
  takes on the same file, and closing another descriptor of the file (SQLite closes its own whenever a
  connection closes) drops every fcntl() lock of the process but never an flock(). The kernel drops it
  when the holder dies, so on SQLite the lease row is then taken over at once. (Network filesystems,
  where flock() is emulated with fcntl(), are not supported by SQLite's WAL mode anyway.)

A later change will generalise the row to one lease per pair (HA workers); the API stays the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import peewee as pw

from . import db as dbmod
from .models import InstanceLock, utcnow

log = logging.getLogger("tradebot.lease")

LOCK_NAME = "run"
DEFAULT_TTL = 30.0

_active: InstanceLease | None = None  # the lease that fences this process's orders (set by `tradebot run`)


class InstanceLocked(Exception):
    pass


class LeaseLost(Exception):
    """Raised by fence(): this process does not hold the lease, so no order may be sent."""

    needs_user_action = False
    user_message = (
        "No order sent: this bot instance lost its hold on the database (another `tradebot run`?); "
        "trading is paused until it has it back."
    )

    def __str__(self) -> str:
        return self.args[0] if self.args else self.user_message


def fence() -> None:
    """Refuse (LeaseLost) unless this process holds a live lease. Call it inside the transaction that
    commits an order intent. A process without a lease (tests, tools) is not fenced."""
    lease = _active
    if lease is not None:
        lease.check()


def _machine_key() -> str | None:
    """Identifies this machine and pid namespace, so a holder's pid can be checked with kill(pid, 0)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{socket.gethostname()}|{boot}|{pidns}".encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, someone else's
        return True
    return True


def _now(offset: float = 0.0):
    """'Now' (+ offset seconds) as naive UTC: the database's clock on PostgreSQL, ours on SQLite."""
    if dbmod.is_sqlite():
        return utcnow() + dt.timedelta(seconds=offset)
    return pw.SQL(f"((now() AT TIME ZONE 'UTC') + interval '{int(offset * 1000)} milliseconds')")


def holder_text() -> str:
    """'host H, pid P, since T' of the current holder (for refusals)."""
    try:
        row = InstanceLock.get_or_none(InstanceLock.name == LOCK_NAME)
    except Exception:  # noqa: BLE001 - an older schema: the refusal itself is what matters
        row = None
    if row is None:
        return "another process"
    since = row.since.replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds")
    return f"host {row.host}, pid {row.pid}, since {since}"


class InstanceLease:
    def __init__(
        self,
        url: str,
        ttl: float = DEFAULT_TTL,
        *,
        admin_ids=(),
        on_lost=None,
        on_regained=None,
        name: str = LOCK_NAME,
    ):
        self.url = url
        self.name = name  # the row: 'run' (the instance lease), 'telegram' (the chat leader, issue 17)
        self.ttl = float(ttl)
        self.renew_every = self.ttl / 6
        self.margin = self.ttl / 3
        self.admin_ids = [int(i) for i in admin_ids]
        self.on_lost = on_lost
        self.on_regained = on_regained
        key = _machine_key()
        self.holder = f"{key or 'nokey'}:{os.getpid()}:{secrets.token_hex(4)}"
        self.token: int | None = None
        self.held = False
        self._fd: int | None = None
        self._last_ok = 0.0
        self._notices: list[tuple[str, dict]] = []
        self._warned = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # -------------------------------------------------------------- SQLite OS lock

    def lock_file(self) -> None:
        """SQLite: flock() the database file itself (see the module docstring). No-op on PostgreSQL."""
        parsed = dbmod.parse_url(self.url)
        if not parsed.is_sqlite or parsed.path == ":memory:" or self._fd is not None:
            return
        import fcntl

        path = Path(parsed.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InstanceLocked(f"tradebot is already running on this database ({holder_text()})") from None
        self._fd = fd

    # -------------------------------------------------------------- lease

    def acquire(self, fencing: bool = False) -> None:
        """Take the lease or raise InstanceLocked. `fencing`: this process sends orders (fence() checks)."""
        global _active
        self.lock_file()
        try:
            if not self._take():
                raise InstanceLocked(f"tradebot is already running on this database ({holder_text()})")
        except Exception:
            self._unlock_file()
            raise
        self.held = True
        self._last_ok = time.monotonic()
        if fencing:
            _active = self

    def _take(self) -> bool:
        now = utcnow()
        InstanceLock.insert(
            name=self.name, host=socket.gethostname(), pid=os.getpid(), since=now, heartbeat_at=now, token=0
        ).on_conflict_ignore().execute()
        cond = InstanceLock.name == self.name
        if self._fd is None:  # PostgreSQL: only a free, expired or dead holder's lease
            free = InstanceLock.holder.is_null() | InstanceLock.expires_at.is_null() | (
                InstanceLock.expires_at < _now()
            )
            dead = self._dead_holder()
            if dead is not None:
                free = free | (InstanceLock.holder == dead)
            cond = cond & free
        # (SQLite: the flock proves no other process uses this database; the row is ours to take.)
        taken = (
            InstanceLock.update(
                holder=self.holder,
                token=InstanceLock.token + 1,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                since=_now(),
                heartbeat_at=_now(),
                expires_at=_now(self.ttl),
                health_at=None,
                active_pairs=None,
                cycle_lag_seconds=None,
                telegram_ok=None,
                telegram_checked_at=None,
            )
            .where(cond)
            .execute()
        )
        if not taken:
            return False
        self.token = (
            InstanceLock.select(InstanceLock.token)
            .where((InstanceLock.name == self.name) & (InstanceLock.holder == self.holder))
            .scalar()
        )
        log.info("holding the database lease (token %s)", self.token)
        return self.token is not None

    def _dead_holder(self) -> str | None:
        """The current holder's id when it is a process of this machine that no longer exists."""
        holder = InstanceLock.select(InstanceLock.holder).where(InstanceLock.name == self.name).scalar()
        key = _machine_key()
        if not holder or key is None:
            return None
        parts = holder.split(":")
        if len(parts) != 3 or parts[0] != key or not parts[1].isdigit():
            return None
        pid = int(parts[1])
        if pid == os.getpid() or _pid_alive(pid):
            return None
        return holder

    def renew(self) -> bool:
        """Extend the lease. False when the row is no longer ours (taken over)."""
        n = (
            InstanceLock.update(heartbeat_at=_now(), expires_at=_now(self.ttl))
            .where(
                (InstanceLock.name == self.name)
                & (InstanceLock.holder == self.holder)
                & (InstanceLock.token == self.token)
            )
            .execute()
        )
        return n == 1

    def check(self) -> None:
        """The fencing check (see fence()): run it inside the intent's transaction."""
        if not self.held:
            raise LeaseLost()
        row = (
            InstanceLock.select(
                InstanceLock.holder, InstanceLock.token, (InstanceLock.expires_at > _now(self.margin))
            )
            .where(InstanceLock.name == self.name)
            .tuples()
            .first()
        )
        # SQLite: the flock already excludes every other process, so a heartbeat held up by a long write
        # (busy database) must not stop trading; the row only has to be ours.
        live = row is not None and (bool(row[2]) or self._fd is not None)
        if row is None or row[0] != self.holder or row[1] != self.token or not live:
            log.warning("fence: refusing an order intent (lease token %s is not live)", self.token)
            raise LeaseLost()

    def release(self) -> None:
        global _active
        self.stop_heartbeat()
        if _active is self:
            _active = None
        if self.held:
            try:
                InstanceLock.update(holder=None, expires_at=None, heartbeat_at=_now()).where(
                    (InstanceLock.name == self.name) & (InstanceLock.holder == self.holder)
                ).execute()
            except Exception:  # noqa: BLE001 - the database may be gone at exit; the lease then expires
                log.warning("could not release the database lease; it expires in %.0f s", self.ttl)
            self.held = False
        self._unlock_file()

    def _unlock_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -------------------------------------------------------------- heartbeat

    def start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2)  # a beat stuck on an unreachable database must not hold up the exit
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.beat()
        try:
            dbmod.db.close()  # this thread's connection
        except Exception:  # noqa: BLE001
            pass

    def beat(self) -> None:
        """One heartbeat: renew (or re-acquire after a loss), then deliver pending admin notices."""
        with self._mutex:
            try:
                if self.held:
                    if self.renew():
                        self._last_ok = time.monotonic()
                    else:
                        self._lose("another process took the database lease over")
                elif self._take():
                    self._regain()
                if self._warned:
                    log.info("database reachable again")
                    self._warned = False
            except Exception as exc:  # noqa: BLE001 - the database is unreachable: retry next beat
                if not self._warned:
                    log.warning("lease heartbeat failed: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
                    self._warned = True
                try:
                    dbmod.db.close()  # a dead connection is replaced on the next beat
                except Exception:  # noqa: BLE001
                    pass
                stale = time.monotonic() - self._last_ok > self.ttl - self.margin
                if self.held and stale and self._fd is None:  # (SQLite: the flock still excludes others)
                    self._lose("the database was unreachable for too long to keep the lease")
            self._flush_notices()

    def _lose(self, why: str) -> None:
        self.held = False
        log.error("lost the database lease: %s; no orders are sent until it is back", why)
        self._notices.append(("lease_lost", {"reason": why, "token": self.token}))
        self._callback(self.on_lost)

    def _regain(self) -> None:
        self.held = True
        self._last_ok = time.monotonic()
        log.warning("database lease regained (token %s); trading resumes", self.token)
        self._notices.append(("lease_regained", {"token": self.token}))
        self._callback(self.on_regained)

    @staticmethod
    def _callback(fn) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception:  # noqa: BLE001
            log.exception("lease callback failed")

    def _flush_notices(self) -> None:
        """Each notice goes to the admins once, as soon as the database takes the write."""
        if not self._notices:
            return
        from . import events

        if events.emit_to_admins(self.admin_ids, self._notices):  # else retried next time
            self._notices.clear()
