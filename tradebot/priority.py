"""Chat before cycles: while people wait for a reply, fewer trading cycles compete for the interpreter.

Cycles are mostly CPU-bound Python and share the GIL with the chat handlers. With 16 cycle threads
runnable, a handler gets about one switch interval in 17 and a reply that needs 5 ms of CPU takes
hundreds of ms. While chat work is queued or running, at most `busy_limit` cycles run at once: the cycle
throughput barely changes (the GIL runs one thread at a time anyway) but a handler competes with one
thread instead of sixteen. The wait for a turn is bounded, so a chat flood slows cycles, never stops them.
"""

from __future__ import annotations

import threading
import time


class Foreground:
    def __init__(self, busy_limit: int = 1, max_wait: float = 0.5):
        self.busy_limit = max(1, int(busy_limit))
        self.max_wait = max_wait
        self._chat = 0  # chat tasks queued or running
        self._cycles = 0  # cycles running
        self._cv = threading.Condition()

    # ------------------------------------------------------------ chat side

    def enter(self) -> None:
        with self._cv:
            self._chat += 1

    def exit(self) -> None:
        with self._cv:
            self._chat = max(0, self._chat - 1)
            if not self._chat:
                self._cv.notify_all()

    @property
    def chat_active(self) -> bool:
        return self._chat > 0

    # ------------------------------------------------------------ cycle side

    def cycle_start(self) -> None:
        """Called before a cycle: waits (at most max_wait) while chat is active and enough cycles run."""
        with self._cv:
            if self._chat and self._cycles >= self.busy_limit:
                deadline = time.monotonic() + self.max_wait
                while self._chat and self._cycles >= self.busy_limit:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            self._cycles += 1

    def cycle_end(self) -> None:
        with self._cv:
            self._cycles -= 1
            self._cv.notify()
