"""Operator health: the running instance records it in its lease row; `tradebot status` reads it.

Recorded every INTERVAL seconds by `tradebot run` (its own thread, so a slow probe never delays the
lease heartbeat): active pairs (scheduled jobs), cycle lag (how far past its due time the most overdue
active pair's last cycle is) and whether the Telegram Bot API answered a getMe.

`read_status(url)` opens the database read-only (no migration, no write) and returns a `Status`;
healthy = a holder whose lease has not expired.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from dataclasses import dataclass
from urllib.parse import quote

from . import db as dbmod
from .instance_lock import LOCK_NAME, InstanceLease
from .models import InstanceLock, User, UserConfig, UserState, utcnow

log = logging.getLogger("tradebot.health")

INTERVAL = 15.0


def cycle_lag_seconds(now: dt.datetime | None = None) -> int:
    """Seconds the most overdue active pair is past its next due cycle (0 when all are on time)."""
    now = now or utcnow()
    rows = (
        UserConfig.select(UserConfig.interval_seconds, UserState.last_cycle_at)
        .join(UserState, on=(UserState.config == UserConfig.id))
        .switch(UserConfig)
        .join(User)
        .where(UserConfig.is_trading & (User.status == "active") & UserState.last_cycle_at.is_null(False))
        .tuples()
    )
    worst = 0.0
    for interval, last in rows:
        worst = max(worst, (now - last).total_seconds() - interval)
    return int(worst)


class HealthRecorder:
    """Writes health into the lease row every `interval` s while the lease is held."""

    def __init__(self, lease: InstanceLease, active_pairs, telegram_probe=None, interval: float = INTERVAL,
                 cycle_lag=None):
        self.lease = lease
        self.active_pairs = active_pairs  # () -> int
        # () -> int seconds; the engine knows it from memory (the query reads every pair's state row)
        self.cycle_lag = cycle_lag
        self.telegram_probe = telegram_probe  # () -> bool, bounded in time
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # A probe may be waiting on an unreachable Telegram (up to 10 s): do not hold up the shutdown for
        # it; the thread is a daemon and its write is guarded by the lease holder.
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1)

    def _loop(self) -> None:
        while True:
            self.record()
            if self._stop.wait(self.interval):
                break
        try:
            dbmod.db.close()
        except Exception:  # noqa: BLE001
            pass

    def record(self) -> None:
        try:
            telegram = None
            if self.telegram_probe is not None:
                try:
                    answer = self.telegram_probe()  # None: not asked (not the Telegram leader)
                    telegram = None if answer is None else bool(answer)
                except Exception:  # noqa: BLE001 - unreachable is the answer
                    telegram = False
            now = utcnow()
            fields = {
                InstanceLock.health_at: now,
                InstanceLock.active_pairs: int(self.active_pairs()),
                InstanceLock.cycle_lag_seconds: (
                    int(self.cycle_lag()) if self.cycle_lag is not None else cycle_lag_seconds(now)
                ),
            }
            if telegram is not None:
                fields[InstanceLock.telegram_ok] = telegram
                fields[InstanceLock.telegram_checked_at] = now
            InstanceLock.update(fields).where(
                (InstanceLock.name == LOCK_NAME) & (InstanceLock.holder == self.lease.holder)
            ).execute()
        except Exception as exc:  # noqa: BLE001 - the next pass retries; the lease has its own thread
            log.warning("could not record health: %s", type(exc).__name__)
            try:
                dbmod.db.close()
            except Exception:  # noqa: BLE001
                pass


# ---------------------------------------------------------------- tradebot status

_COLUMNS = (
    "holder, host, pid, since, heartbeat_at, expires_at, health_at, active_pairs, cycle_lag_seconds, "
    "telegram_ok, telegram_checked_at"
)


@dataclass
class Status:
    running: bool
    message: str = ""  # why not running
    host: str | None = None
    pid: int | None = None
    since: dt.datetime | None = None
    heartbeat_age: float | None = None
    expires_in: float | None = None
    health_age: float | None = None
    active_pairs: int | None = None
    cycle_lag: int | None = None
    telegram_ok: bool | None = None
    telegram_age: float | None = None


def _ts(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _query(url: str):
    """(row, now) from a connection that cannot write; None when there is no lease table yet."""
    parsed = dbmod.parse_url(url)
    sql = f"SELECT {_COLUMNS} FROM instance_lock WHERE name = '{LOCK_NAME}'"
    if parsed.is_sqlite:
        import os

        if not os.path.exists(parsed.path):
            raise FileNotFoundError(parsed.path)
        # No -wal file: nobody has the database open (a clean stop checkpoints and removes it), and
        # immutable=1 reads it without creating -wal/-shm files. Otherwise a plain read-only open.
        flags = "mode=ro" if os.path.exists(parsed.path + "-wal") else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"file:{quote(parsed.path)}?{flags}", uri=True, timeout=10)
        try:
            conn.execute("PRAGMA query_only = 1")
            try:
                row = conn.execute(sql).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such" in str(exc):
                    raise SchemaTooOld() from None
                raise
            return row, utcnow()
        finally:
            conn.close()
    import psycopg2

    with dbmod.readonly_pg_cursor(parsed) as cur:
        try:
            cur.execute(sql)
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn):
            raise SchemaTooOld() from None
        row = cur.fetchone()
        cur.execute("SELECT now() AT TIME ZONE 'UTC'")
        return row, cur.fetchone()[0]


class SchemaTooOld(Exception):
    pass


def read_status(url: str) -> Status:
    try:
        row, now = _query(url)
    except FileNotFoundError:
        return Status(False, "no database yet (run `tradebot init`)")
    except SchemaTooOld:
        return Status(False, "no lease table in the database yet (never run, or an older schema: `tradebot run` migrates it)")
    if row is None:
        return Status(False, "no `tradebot run` has used this database yet")
    holder, host, pid, since, heartbeat, expires, health, pairs, lag, tg_ok, tg_at = row
    since, heartbeat, expires, health, tg_at = map(_ts, (since, heartbeat, expires, health, tg_at))
    st = Status(
        running=False,
        host=host,
        pid=pid,
        since=since,
        heartbeat_age=(now - heartbeat).total_seconds() if heartbeat else None,
        expires_in=(expires - now).total_seconds() if expires else None,
        health_age=(now - health).total_seconds() if health else None,
        active_pairs=pairs,
        cycle_lag=lag,
        telegram_ok=None if tg_ok is None else bool(tg_ok),
        telegram_age=(now - tg_at).total_seconds() if tg_at else None,
    )
    if holder is None:
        st.message = "stopped cleanly"
    elif st.expires_in is None or st.expires_in <= 0:
        st.message = "stale: the last `tradebot run` stopped renewing its lease (crashed, hung or cut off)"
    else:
        st.running = True
    return st


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{max(0, round(seconds))} s ago"


def format_status(st: Status) -> list[str]:
    since = st.since.replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds") if st.since else "?"
    if not st.running:
        lines = [f"running:    no; {st.message}"]
        if st.host is not None:
            lines.append(f"last run:   host {st.host}, pid {st.pid}, since {since}, heartbeat {_ago(st.heartbeat_age)}")
        return lines
    lines = [
        f"running:    yes (host {st.host}, pid {st.pid}, since {since})",
        f"heartbeat:  {_ago(st.heartbeat_age)} (lease valid for {max(0, round(st.expires_in))} s more)",
    ]
    if st.health_age is None:
        lines.append("health:     not recorded yet")
        return lines
    lines.append(f"pairs:      {st.active_pairs} active (recorded {_ago(st.health_age)})")
    lines.append(f"cycle lag:  {st.cycle_lag} s" + ("" if not st.cycle_lag else " behind schedule"))
    if st.telegram_ok is None:
        lines.append("telegram:   not checked yet")
    else:
        lines.append(f"telegram:   {'reachable' if st.telegram_ok else 'UNREACHABLE'} (checked {_ago(st.telegram_age)})")
    return lines
