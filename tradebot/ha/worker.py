"""HAWorker: the one thread of a `tradebot run` worker on PostgreSQL that keeps its share of the pairs.

Every `renew_every` seconds (ttl/6), one round:
1. renew: one statement renews the worker row and all its leases (leases.renew). A lease not returned
   was taken over: the pair leaves the local dispatcher at once (the fence refuses any order of a cycle
   still running). A pair no longer trading (stopped from the chat on another worker) leaves too, and its
   lease is released. A lease returned that we do not run (e.g. after a database outage) is run again.
2. balance: fair share = ceil(trading pairs / live workers). Over it, the surplus is handed over BETWEEN
   cycles: taken off the dispatcher, released once its in-flight cycle ended (the lease is renewed until
   then). Under it, free or expired leases are claimed (token + 1) and scheduled.
3. workers that disappeared (expired without a clean stop) are reported to the admins once.
A database that cannot be reached for ttl - margin seconds: every pair leaves the dispatcher (another
worker takes them once the leases expire); they come back as soon as renewals succeed and they are still ours.

The engine side (`manager`) is duck-typed: adopt(id, interval), let_go(id), is_busy(id), cycle_lag_seconds().
"""

from __future__ import annotations

import logging
import threading
import time

from .. import db as dbmod
from ..instance_lock import InstanceLocked
from . import balancer, fence, leases, registry
from .sql import NOW, execute

log = logging.getLogger("tradebot.ha")

DEFAULT_TTL = 20.0


class HAWorker:
    def __init__(self, manager, ttl: float = DEFAULT_TTL, *, admin_ids=(), renew_every: float | None = None):
        self.manager = manager
        self.ttl = float(ttl)
        self.renew_every = float(renew_every or self.ttl / 6)
        self.margin = self.ttl / 3
        self.admin_ids = [int(i) for i in admin_ids]
        self.me = registry.worker_id()
        self.tokens: dict[int, int] = {}  # pairs this worker holds -> the token it claimed them with
        self.leaving: set[int] = set()  # handed over: off the dispatcher, released when idle
        self._last_ok = time.monotonic()
        self._notices: list[tuple[str, dict]] = []
        self._warned = False
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, thread: bool = True) -> None:
        """Register (refused beside a live single-instance lease), claim a first share, start the thread."""
        holder = registry.single_instance_holder()
        if holder is not None:
            raise InstanceLocked(f"a single-instance lease holds this database ({holder}); "
                                 "workers cannot join it")
        registry.register(self.me, self.ttl)
        fence.set_active(self)
        log.info("worker %s registered (lease ttl %.0f s)", self.me, self.ttl)
        self.round()
        if thread:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="ha-leases", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the leases stay until release(), or expire)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    def release(self) -> None:
        """Clean exit (after the engine drained): give every idle lease up at once, mark the worker stopped."""
        self.stop()
        if fence.active() is self:
            fence.set_active(None)
        try:
            idle = [c for c in self.tokens if not self.manager.is_busy(c)]
            n = leases.release(self.me, idle)
            registry.mark_stopped(self.me)
            log.info("worker %s stopped: released %d pair leases", self.me, n)
        except Exception as exc:  # noqa: BLE001 - the database may be gone; the leases then expire
            log.warning("could not release the pair leases (%s); they expire in %.0f s", _line(exc), self.ttl)
        self.tokens.clear()

    def poke(self) -> None:
        """Run a round soon (a pair was started): it is claimed without waiting for the next beat."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.renew_every)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.round()
        try:
            dbmod.db.close()  # this thread's connection
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ the engine asks

    def fence_ok(self, config_id: int) -> bool:
        token = self.tokens.get(config_id)
        return token is not None and leases.check_fence(self.me, config_id, token, self.margin)

    def begin_slot(self, config_id: int, due: float) -> bool:
        """May this worker run the cycle of `config_id` for slot `due` (epoch s)? Records it if so."""
        token = self.tokens.get(config_id)
        if token is None or config_id in self.leaving:
            return False
        return leases.begin_slot(self.me, config_id, token, int(round(due * 1000)))

    def offer(self, config_id: int) -> None:
        """A pair started trading (on any worker's chat): make sure it has a lease row, claim soon."""
        leases.add_one(config_id)
        self.poke()

    def forget(self, config_id: int) -> None:
        """A pair stopped here: release its lease if it is ours (it is off the dispatcher already)."""
        with self._mutex:
            if self.tokens.pop(config_id, None) is not None:
                self.leaving.discard(config_id)
                leases.release(self.me, [config_id])

    # ------------------------------------------------------------------ one round

    def round(self) -> None:
        with self._mutex:
            try:
                self._renew()
                self._balance()
                self._report_gone()
                self._last_ok = time.monotonic()
                self.rounds += 1
                if self._warned:
                    log.info("database reachable again")
                    self._warned = False
            except Exception as exc:  # noqa: BLE001 - unreachable database: retry next round
                if not self._warned:
                    log.warning("pair lease round failed: %s", _line(exc))
                    self._warned = True
                try:
                    dbmod.db.close()  # a dead connection is replaced next round
                except Exception:  # noqa: BLE001
                    pass
                if self.tokens and time.monotonic() - self._last_ok > self.ttl - self.margin:
                    log.error("database unreachable for too long: giving up all %d pairs until it is back",
                              len(self.tokens))
                    for cid in list(self.tokens):
                        self._drop(cid)
            self._flush_notices()

    def _renew(self) -> None:
        alive, rows = leases.renew(self.me, self.ttl, len(self.tokens), _lag(self.manager))
        if not alive:  # our row was deleted (old-row cleanup after a very long stall): register again
            registry.register(self.me, self.ttl)
        ours = {cid: (token, trading, interval) for cid, token, trading, interval in rows}
        for cid, token in list(self.tokens.items()):
            if ours.get(cid, (None,))[0] != token:
                log.warning("pair %s: lease taken over by another worker; not running it here any more", cid)
                self._drop(cid)
        stopped = []
        for cid, (token, trading, interval) in ours.items():
            if not trading:
                stopped.append(cid)
                self._drop(cid)
            elif cid not in self.tokens and cid not in self.leaving:
                self.tokens[cid] = token  # still ours after an outage: run it again
                self.manager.adopt(cid, interval)
            elif cid in self.tokens and cid not in self.leaving:
                self.manager.adopt(cid, interval, only_if_changed=True)
        if stopped:
            leases.release(self.me, stopped)
        done = [cid for cid in self.leaving if not self.manager.is_busy(cid)]
        if done:
            leases.release(self.me, done)
            for cid in done:
                self.leaving.discard(cid)
                self.tokens.pop(cid, None)
            log.info("handed %d pairs over to other workers", len(done))

    def _balance(self) -> None:
        leases.add_missing()
        active, live = execute(
            "SELECT (SELECT count(*) FROM user_configs WHERE is_trading), "
            f"(SELECT count(*) FROM workers WHERE stopped_at IS NULL AND expires_at > {NOW})"
        ).fetchone()
        share = balancer.fair_share(int(active), int(live))
        running = [c for c in self.tokens if c not in self.leaving]
        for cid in balancer.surplus(running, share, self.manager.is_busy):
            self.manager.let_go(cid)  # no new cycle; released once its in-flight cycle ended
            self.leaving.add(cid)
        before = len(self.tokens)
        idle = [c for c in self.leaving if not self.manager.is_busy(c)]
        if idle:
            leases.release(self.me, idle)
            for cid in idle:
                self.leaving.discard(cid)
                self.tokens.pop(cid, None)
            log.info("handed %d pairs over to other workers (share %d of %d over %d workers)", len(idle), share,
                     active, live)
        want = balancer.to_claim(len(self.tokens), share)
        taken = leases.claim(self.me, self.ttl, want)
        gone_from = set()
        for cid, token, interval, prev, last_slot in taken:
            self.tokens[cid] = token
            # a pair taken over from a dead worker may have missed a slot: that one runs at once
            self.manager.adopt(cid, interval, last_slot_ms=last_slot if prev is not None else None)
            if prev is not None:
                gone_from.add(prev)
        if len(self.tokens) != before:  # what `tradebot status` and a worker_gone notice show
            leases.set_pairs_held(self.me, len(self.tokens))
        if taken:
            log.info("claimed %d pairs (share %d of %d over %d workers)%s", len(taken), share, active, live,
                     f"; taken over from {len(gone_from)} worker(s)" if gone_from else "")

    def _report_gone(self) -> None:
        for wid, host, pid, held in registry.claim_gone(self.me, 0):
            log.error("worker %s (host %s, pid %s) disappeared holding %s pairs; its pairs move to the "
                      "live workers", wid, host, pid, held)
            self._notices.append(("worker_gone", {"worker": wid, "host": host, "pid": pid, "pairs": held}))
        if self.rounds % 1000 == 0:
            registry.forget_old()

    def _drop(self, cid: int) -> None:
        self.manager.let_go(cid)
        self.tokens.pop(cid, None)
        self.leaving.discard(cid)

    def _flush_notices(self) -> None:
        """Each notice goes to the admins once (the Telegram leader delivers the outbox)."""
        if not self._notices:
            return
        from .. import events

        if events.emit_to_admins(self.admin_ids, self._notices):  # else retried next time
            self._notices.clear()


def _lag(manager) -> int | None:
    try:
        return int(manager.cycle_lag_seconds())
    except Exception:  # noqa: BLE001
        return None


def _line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
