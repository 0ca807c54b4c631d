"""Charts are drawn on one small worker thread, not on the chat threads: a render takes a few hundred ms of
CPU, and chat replies of other users must not queue behind it. Finished PNGs are kept in a small LRU cache
keyed by what they show (pair, timeframe, last candle, pair state); a second request for a chart that is
being drawn waits for the same render."""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future, ThreadPoolExecutor

CACHE_ENTRIES = 32  # ~60 KB each
RENDER_TIMEOUT = 60.0


class ChartWorker:
    def __init__(self, threads: int = 1, cache_entries: int = CACHE_ENTRIES):
        self._pool: ThreadPoolExecutor | None = None
        self._threads = threads
        self._cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._inflight: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self.cache_entries = cache_entries
        self.renders = 0  # how many times a chart was actually drawn

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:  # under self._lock
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="chart-render")
        return self._pool

    def render(self, key: tuple, fn, *args, timeout: float = RENDER_TIMEOUT) -> bytes:
        """PNG bytes of fn(*args), from the cache when `key` was drawn before."""
        with self._lock:
            png = self._cache.get(key)
            if png is not None:
                self._cache.move_to_end(key)
                return png
            future = self._inflight.get(key)
            if future is None:
                future = self._executor().submit(self._run, key, fn, *args)
                self._inflight[key] = future
        return future.result(timeout)

    def _run(self, key: tuple, fn, *args) -> bytes:
        try:
            png = fn(*args)
            with self._lock:
                self.renders += 1
                self._cache[key] = png
                while len(self._cache) > self.cache_entries:
                    self._cache.popitem(last=False)
            return png
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
