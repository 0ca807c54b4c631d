"""WAL checkpoints of the SQLite database on a thread of their own, while `tradebot run` runs.

By default SQLite checkpoints inside the commit that takes the write-ahead log past 1,000 pages: that
commit copies the pages into the database file and syncs it while its thread still holds the process's
writer lock (db.write_tx), so every cycle that wants to write waits behind it, for as long as the disk
takes (on a busy disk, a second). Here a PASSIVE checkpoint runs every `interval` seconds on this
thread instead: it never blocks writers or readers, the log stays small, and commits stay short.
`wal_autocheckpoint` is raised (db.SQLITE_PRAGMAS), not switched off: if this thread ever stalls, the
commits take over again at 10,000 pages.
"""

from __future__ import annotations

import logging
import threading

from . import db as dbmod

log = logging.getLogger(__name__)


class WalCheckpointer:
    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        if dbmod.is_sqlite():
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            try:
                dbmod.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.passes += 1
                failing = False
            except Exception as exc:  # noqa: BLE001 - the next pass retries; commits checkpoint at worst
                if not failing:
                    log.warning("WAL checkpoint failed: %s", exc)
                failing = True
        try:
            dbmod.db.close()  # this thread's connection
        except Exception:  # noqa: BLE001
            pass
