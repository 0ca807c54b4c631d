"""Per-sender rate limit for chat messages and button presses."""

from __future__ import annotations

import collections
import threading
import time


class RateLimiter:
    """Sliding one-minute window per user. The first refused message of a burst gets a polite answer."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = max(1, int(per_minute))
        self.clock = clock
        self._hits: dict[int, collections.deque] = {}
        self._warned: dict[int, float] = {}
        self._lock = threading.Lock()
        self._prune_at = self.PRUNE_MIN

    PRUNE_MIN = 10_000

    def _prune(self, now: float) -> None:
        """Forget senders quiet for a minute, so that a flood from many ids cannot grow memory for ever
        (amortized O(1): a sweep only after the table has doubled)."""
        for key in [k for k, hits in self._hits.items() if not hits or now - hits[-1] >= 60]:
            del self._hits[key]
            self._warned.pop(key, None)
        self._prune_at = max(self.PRUNE_MIN, 2 * len(self._hits))

    def check(self, key: int) -> tuple[bool, bool, int]:
        """(allowed, warn_now, seconds_to_wait)."""
        now = self.clock()
        with self._lock:
            if len(self._hits) >= self._prune_at:
                self._prune(now)
            hits = self._hits.setdefault(key, collections.deque())
            while hits and now - hits[0] >= 60:
                hits.popleft()
            if len(hits) < self.per_minute:
                hits.append(now)
                self._warned.pop(key, None)
                return True, False, 0
            wait = int(60 - (now - hits[0])) + 1
            warned_at = self._warned.get(key)
            if warned_at is not None and now - warned_at < 60:
                return False, False, wait
            self._warned[key] = now
            return False, True, wait
