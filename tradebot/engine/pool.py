"""The thread pool that runs trading cycles: concurrent.futures semantics on DAEMON threads.

concurrent.futures' own workers are joined when the interpreter exits, so one cycle stuck in an exchange
request (up to its timeout) would hold `tradebot run` after SIGTERM. A cycle still running after the
shutdown grace is abandoned instead: its order intent was committed before anything was sent, and the
next start reconciles it by client order id (engine/reconcile.py), so nothing is left ambiguous.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Executor, Future

from apscheduler.executors.pool import BasePoolExecutor


class DaemonThreadPool(Executor):
    def __init__(self, workers: int, name: str = "cycle"):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._shutdown = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the future, like concurrent.futures
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for t in self._threads:
                t.join()


class DaemonPoolExecutor(BasePoolExecutor):
    """APScheduler executor over DaemonThreadPool."""

    def __init__(self, max_workers: int = 10):
        super().__init__(DaemonThreadPool(max_workers))
