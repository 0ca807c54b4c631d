"""One token-bucket limiter per exchange HOST, shared by every client and thread.

Exchange limits are per IP, while ccxt's sync throttle is per instance and not thread-safe, so clients run
with enableRateLimit=False and call `HostLimiter.acquire(cost)` instead (see clients.py). A 418/429 pauses the
host for everyone for its Retry-After.
"""

from __future__ import annotations

import threading
import time


class HostLimiter:
    def __init__(self, host: str, rate: float, capacity: float | None = None, clock=time.monotonic, sleep=time.sleep):
        self.host = host
        self.rate = rate  # tokens (ccxt cost units) per second
        self.capacity = capacity if capacity is not None else max(rate, 1.0)  # about one second of burst
        self._tokens = self.capacity
        self._stamp = clock()
        self._paused_until = 0.0
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.pauses = 0  # how many 418/429 pauses were applied (for tests and logs)

    def pause(self, seconds: float) -> None:
        """Nobody may call this host for `seconds` (Retry-After of a 418/429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tokens = 0.0
            self.pauses += 1

    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def acquire(self, cost: float = 1.0) -> None:
        cost = min(float(cost or 1.0), self.capacity)  # a call heavier than the bucket still gets through
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0:
                    self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                    self._stamp = now
                    if self._tokens >= cost:
                        self._tokens -= cost
                        return
                    wait = (cost - self._tokens) / self.rate
                else:
                    self._stamp = max(self._stamp, self._paused_until)
            self._sleep(min(wait, 1.0))


class LimiterRegistry:
    """host -> HostLimiter, created on first use."""

    def __init__(self):
        self._by_host: dict[str, HostLimiter] = {}
        self._lock = threading.Lock()

    def get(self, host: str, rate: float) -> HostLimiter:
        with self._lock:
            lim = self._by_host.get(host)
            if lim is None:
                lim = self._by_host[host] = HostLimiter(host, rate)
            return lim


def retry_after_seconds(headers, default: float = 1.0) -> float:
    """Seconds from a Retry-After header (delta-seconds form; exchanges do not send HTTP dates)."""
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return max(0.0, float(value)) if value is not None else default
    except (TypeError, ValueError):
        return default
