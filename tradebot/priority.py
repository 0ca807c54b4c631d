"""Chat before cycles: while people wait for a reply, trading cycles stand back for a moment.

Cycles are mostly CPU-bound Python and share the GIL with the chat handlers. With 16 cycle threads
runnable, a handler gets about one switch interval in 17 and a reply that needs a few ms of CPU takes
hundreds of ms; even ONE running cycle halves a reply's share of the interpreter. So while chat work is
queued or running:
- a cycle whose slot is less than `hold` seconds past does not start (at 20,000 pairs, 0.25 s is ~80
  cycles, worked off in a fraction of a second once the replies are out);
- after that, at most `busy_limit` cycles run at once;
- and no cycle waits beyond `max_lag` seconds past its slot (nor `max_wait` seconds in all): a chat
  flood delays cycles by a bounded amount, never stops them, and the cycles' throughput is unchanged.
"""

from __future__ import annotations

import threading
import time


class Foreground:
    def __init__(self, busy_limit: int = 1, max_wait: float = 0.5, hold: float = 0.25, max_lag: float = 0.5,
                 clock=time.time):
        self.busy_limit = max(1, int(busy_limit))
        self.max_wait = max_wait
        self.hold = hold
        self.max_lag = max_lag
        self.clock = clock  # wall clock of the slots (epoch seconds)
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

    def cycle_start(self, due: float | None = None) -> None:
        """Called before a cycle whose slot was `due` (epoch seconds; None: unknown). Waits, within the
        bounds above, while chat work is active."""
        with self._cv:
            if self._chat:
                now = time.monotonic()
                deadline = now + self.max_wait
                hold_until = now  # no full hold without a known slot
                if due is not None:
                    past = self.clock() - due  # how late the cycle already is
                    deadline = min(deadline, now + self.max_lag - past)
                    hold_until = min(deadline, now + self.hold - past)
                while self._chat:
                    t = time.monotonic()
                    if t < hold_until:
                        self._cv.wait(hold_until - t)
                    elif self._cycles >= self.busy_limit and t < deadline:
                        self._cv.wait(deadline - t)
                    else:
                        break
            self._cycles += 1

    def cycle_end(self) -> None:
        with self._cv:
            self._cycles -= 1
            self._cv.notify()
