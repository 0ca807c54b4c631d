"""The process's SQLite writer lock: reentrant, and threads that answer people go first.

SQLite takes one writer at a time; this process's writers queue here (db._SqliteDatabase). At 20,000
pairs the trading cycles hold it several hundred times a second, and a plain lock hands it to whichever
thread the OS wakes first: a chat reply's few writes (the inbox's record, claim and done) could wait
behind a dozen cycles' transactions. A thread marked urgent (`mark_urgent()`: the Telegram poller, the
chat workers and the notifier) is served before any waiting unmarked thread; among equals the order is
the OS's. The lock is held for single short transactions, so unmarked threads are delayed, never starved
for long: urgent work is bounded by the chat rate limit and by one notification sent at a time.
"""

from __future__ import annotations

import threading
import time

_local = threading.local()


def mark_urgent(urgent: bool = True) -> None:
    """This thread's writes go before those of unmarked threads (see the module doc)."""
    _local.urgent = urgent


def is_urgent() -> bool:
    return getattr(_local, "urgent", False)


class PriorityRLock:
    def __init__(self):
        self._mutex = threading.Lock()
        self._urgent = threading.Condition(self._mutex)
        self._normal = threading.Condition(self._mutex)
        self._owner: int | None = None
        self._count = 0
        self._waiting_urgent = 0
        self._waiting_normal = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        urgent = is_urgent()
        with self._mutex:
            if self._owner == me:
                self._count += 1
                return True
            if self._free_for(urgent):
                self._owner, self._count = me, 1
                return True
            if not blocking:
                return False
            deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
            cond = self._urgent if urgent else self._normal
            if urgent:
                self._waiting_urgent += 1
            else:
                self._waiting_normal += 1
            try:
                while not self._free_for(urgent):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    cond.wait(left)
                self._owner, self._count = me, 1
                return True
            finally:
                if urgent:
                    self._waiting_urgent -= 1
                else:
                    self._waiting_normal -= 1
                if self._owner != me:  # gave up: a wake-up meant for us must not be lost
                    self._wake()

    def _free_for(self, urgent: bool) -> bool:
        """Free, and no urgent thread is waiting ahead of an unmarked one."""
        if self._owner is not None:
            return False
        return urgent or self._waiting_urgent == 0

    def _wake(self) -> None:
        if self._owner is not None:
            return
        if self._waiting_urgent:
            self._urgent.notify()
        elif self._waiting_normal:
            self._normal.notify()

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release un-acquired lock")
            self._count -= 1
            if self._count == 0:
                self._owner = None
                self._wake()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
