"""One `tradebot run` per database. SQLite: an OS file lock next to the database (released by
the kernel when the holder dies, even on SIGKILL). PostgreSQL: a session advisory lock (released
when the holder's connection drops). The instance_lock row only says who holds it."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

from . import db as dbmod
from .models import InstanceLock, utcnow

LOCK_NAME = "run"
PG_LOCK_KEY = 0x7472_6164  # "trad"


class InstanceLocked(Exception):
    pass


def _holder_text() -> str:
    row = InstanceLock.get_or_none(InstanceLock.name == LOCK_NAME)
    if row is None:
        return "another process"
    since = row.since.replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds")
    return f"host {row.host}, pid {row.pid}, since {since}"


class InstanceLockHandle:
    def __init__(self, url: str):
        self.url = url
        self._fh = None
        self._pg = None

    def acquire(self) -> None:
        parsed = dbmod.parse_url(self.url)
        if parsed.is_sqlite:
            if parsed.path == ":memory:":
                return
            import fcntl

            path = Path(parsed.path + ".lock")
            fh = open(path, "a+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise InstanceLocked(f"tradebot is already running on this database ({_holder_text()})") from None
            self._fh = fh
        else:
            import psycopg2

            conn = psycopg2.connect(**parsed.dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (PG_LOCK_KEY,))
                ok = cur.fetchone()[0]
            if not ok:
                conn.close()
                raise InstanceLocked(f"tradebot is already running on this database ({_holder_text()})")
            self._pg = conn
        now = utcnow()
        host = socket.gethostname()
        (
            InstanceLock.insert(name=LOCK_NAME, host=host, pid=os.getpid(), since=now, heartbeat_at=now)
            .on_conflict(
                conflict_target=[InstanceLock.name],
                update={InstanceLock.host: host, InstanceLock.pid: os.getpid(), InstanceLock.since: now,
                        InstanceLock.heartbeat_at: now},
            )
            .execute()
        )

    def release(self) -> None:
        try:
            InstanceLock.delete().where(
                (InstanceLock.name == LOCK_NAME) & (InstanceLock.pid == os.getpid())
            ).execute()
        except Exception:  # the database may already be closed at exit
            pass
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None
