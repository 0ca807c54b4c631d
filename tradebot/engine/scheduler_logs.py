"""APScheduler's own log lines, throttled: a busy scheduler must not flood the log with "missed" and
"maximum instances" warnings."""

from __future__ import annotations

import logging
import threading
import time


class _Throttle(logging.Filter):
    """APScheduler logs every missed or skipped run (under overload: one line per pair per interval).
    Let one such line through per minute, saying how many were held back."""

    def __init__(self, every: float = 60.0):
        super().__init__()
        self.every = every
        self._next = 0.0
        self._held = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return False
            held, self._held, self._next = self._held, 0, now + self.every
        if held:
            record.msg = f"{record.msg} (and {held} similar in the last minute)"
        return True


def quiet_scheduler_logs() -> None:
    """Log volume follows events, not cycles: APScheduler's two INFO lines per job run ("Running job",
    "executed successfully") are dropped and its per-run warnings throttled."""
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    sched = logging.getLogger("apscheduler.scheduler")
    sched.setLevel(logging.WARNING)
    if not any(isinstance(f, _Throttle) for f in sched.filters):
        sched.addFilter(_Throttle())
