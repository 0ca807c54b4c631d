"""BotManager: every active pair of every user started at its slot by ONE SlotDispatcher (engine/slots.py).

- every active pair has a slot on the wall-clock grid of its interval: start times are spread over the
  interval by a fixed per-pair offset so a thousand pairs do not all fire at second 0; a slow cycle never
  overlaps itself and missed slots collapse into the next one; due pairs run on a pool of daemon threads;
- APScheduler keeps the periodic jobs: the market-data prefetch every minute and, at 00:00 UTC, the
  daily summary event of every user;
- `start()` reconciles pending order intents with the exchanges, resumes every pair whose is_trading
  is set, and schedules the daily summary;
- `shutdown(timeout)`: no new cycle starts, in-flight cycles get `timeout` seconds to finish, then the
  scheduler stops and the database connection closes;
- isolation: an exception in one pair's cycle is recorded on its user_state (last_error, error_count,
  status 'error') and produces ONE `pair_error` event per change of error (not one per cycle); the
  scheduler and every other pair keep running.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from decimal import Decimal

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .. import db as dbmod
from .. import risk
from ..db import write_tx
from ..models import User, UserConfig, UserState
from ..priority import Foreground
from . import core
from .book_rows import ensure_active_states, ensure_state, load_book, ms_to_dt, open_position, save_state
from .breaker import record_reset as _record_reset
from .cycle import CycleRunner
from .cycle_jobs import CycleJobs
from .daily import DailySummary
from .pool import DaemonPoolExecutor, DaemonThreadPool
from .scheduler_logs import quiet_scheduler_logs
from .slots import SlotDispatcher, next_slot

log = logging.getLogger(__name__)

ZERO = Decimal(0)
UTC = dt.UTC

PREFETCH_LEAD = 5.0  # seconds after each minute when no pair starts; market data is refreshed then


def _deciders(source):
    """A `name -> Decider` function from a factory callable or from settings (Config with .llm/.ensemble)."""
    cache: dict[str, object] = {}
    lock = threading.Lock()
    if callable(source) and not hasattr(source, "llm"):
        def build(name):
            return source(name.partition("@")[0])  # a plain factory knows no presets
    else:
        from ..strategy.factory import DeciderFactory

        factory = DeciderFactory(getattr(source, "llm", None), getattr(source, "ensemble", None),
                                 presets=getattr(source, "presets", None))
        build = factory.build

    def decider_for(name: str):
        d = cache.get(name)
        if d is None:
            with lock:
                d = cache.get(name)
                if d is None:
                    d = cache[name] = build(name)
        return d

    decider_for.factory = getattr(build, "__self__", None)  # DeciderFactory (its shared LLM answers)
    return decider_for


def _llm_context(hub, llm_cfg):
    """The shared prompt context when the operator switched any of it on, else None."""
    if llm_cfg is None or isinstance(llm_cfg, dict):
        return None
    if not (getattr(llm_cfg, "context_timeframes", None) or getattr(llm_cfg, "order_book_levels", 0)
            or getattr(llm_cfg, "news_feeds", None)):
        return None
    from .llm_context import LLMContext

    return LLMContext(hub, llm_cfg)


class BotManager(CycleJobs, DailySummary):
    """Schedules every active pair; its cycle jobs and the daily summary are in cycle_jobs.py and daily.py."""

    def __init__(
        self,
        hub,
        deciders_factory_or_settings,
        *,
        vault=None,
        clock=None,
        max_workers: int | None = None,
        default_interval: int | None = None,
        shutdown_timeout: float | None = None,
        candle_limit: int = 100,
        record_holds: str = "nontechnical",
        user_limits: risk.BreakerLimits | None = None,
        spread: bool = True,
    ):
        src = deciders_factory_or_settings
        trading = getattr(src, "trading", None)
        self.hub = hub
        self.vault = vault
        self.clock = clock or time.time  # -> epoch seconds
        self.max_workers = max_workers or getattr(trading, "scheduler_workers", None) or 16
        self.default_interval = default_interval or getattr(trading, "default_interval_seconds", None) or 60
        self.shutdown_timeout = shutdown_timeout or getattr(trading, "shutdown_timeout_seconds", None) or 2
        self.spread = spread
        self.decision_retention_days = int(getattr(trading, "decision_retention_days", None) or 30)
        rc = getattr(src, "risk", None)
        if user_limits is None and rc is not None:
            # user scope: the configured streak / daily-loss limits over all of a user's pairs (no drawdown)
            user_limits = risk.BreakerLimits(
                max_consecutive_losses=int(rc.max_consecutive_losses),
                daily_loss_limit_percent=Decimal(rc.daily_loss_limit_percent),
                max_drawdown_percent=ZERO,
                cooldown_minutes=int(rc.cooldown_minutes),
            )
        from .llm_ledger import LLMLedger

        telegram = getattr(src, "telegram", None)
        self.llm_ledger = LLMLedger(getattr(src, "llm", None), getattr(telegram, "admin_ids", ()) or (), self.clock)
        self.runner = CycleRunner(
            hub,
            _deciders(src),
            llm_ledger=self.llm_ledger,
            llm_context=_llm_context(hub, getattr(src, "llm", None)),
            vault=vault,
            indicators=getattr(hub, "indicators", None),
            candle_limit=candle_limit,
            record_holds=record_holds,
            user_limits=user_limits,
        )
        quiet_scheduler_logs()
        # periodic jobs only (prefetch, daily summary): two threads, apart from the cycle workers
        self.scheduler = BackgroundScheduler(
            executors={"default": DaemonPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.foreground = Foreground()  # the Telegram layer marks chat work; cycles step aside for it
        self.pool = DaemonThreadPool(self.max_workers)
        self.slots = SlotDispatcher(self.pool.submit, self._job)
        self._started = False
        self._stopping = threading.Event()
        self.stop_requested = threading.Event()
        self._inflight = 0
        self._cv = threading.Condition()
        self.stats = {"cycles": 0, "errors": 0, "lags": [], "durations": []}
        self.stats["lag_at"] = self.stats["lags"]  # same list (bench/engine.py reads it by position)
        self.stats["lag_t"] = []  # (when, lag) of each cycle start
        self.record_lag = False
        # HA mode (PostgreSQL workers, tradebot/ha/): the worker that decides which pairs run here; None =
        # this process runs every trading pair (SQLite, or the single-instance lease)
        self.ha = None
        self.daily_gate = None  # (date) -> bool: run the daily job here? (HA: once across the workers)

    # ------------------------------------------------------------ lifecycle

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> dict:
        """Start the scheduler, reconcile pending intents, resume trading pairs, schedule the summary."""
        if self._started:
            return {}
        now = time.time()
        if self.ha is not None:
            # HA: the pairs come from the leases this worker claims (self.adopt); each pair's pending intents
            # are settled by its own holder's next cycle, never here (another worker may be sending them)
            counts, resumed = {}, 0
        else:
            counts = self.runner.reconcile_pending(now_ms=self.now_ms())
            # one pass over the active pairs: a heap of their next slots (linear; ~0.1 s at 20,000 pairs)
            rows = (
                UserConfig.select(UserConfig.id, UserConfig.interval_seconds)
                .where(UserConfig.is_trading == True)  # noqa: E712
                .order_by(UserConfig.id)
                .tuples()
            )
            resumed = self.slots.add_many(
                (cid, iv, self._offset(cid, iv))
                for cid, iv in ((c, int(i or self.default_interval)) for c, i in rows)
            )
        self.scheduler.add_job(
            self._daily_job,
            CronTrigger(hour=0, minute=0, second=0, timezone=UTC),
            id="daily_summary",
            replace_existing=True,
            misfire_grace_time=3600,
        )
        self.scheduler.add_job(
            self._prefetch_job,
            IntervalTrigger(
                seconds=60,
                start_date=dt.datetime.fromtimestamp((now // 60 + 1) * 60 + 0.2, UTC),
                timezone=UTC,
            ),
            id="prefetch",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=10,
        )
        self.scheduler.start()
        # Missing state rows are created in bulk (not in a transaction of each pair's first cycle) by a
        # background thread, so start() and the first Telegram poll do not wait for 20,000 inserts; a
        # pair whose slot comes first creates its own row (the bulk insert skips existing ones).
        self._states = threading.Thread(target=self._ensure_states, name="ensure-states", daemon=True)
        self._states.start()
        self.slots.start()
        self._started = True
        log.info("engine started: %d pairs resumed, reconcile %s", resumed, counts)
        return {"resumed": resumed, **counts}

    def _ensure_states(self) -> None:
        try:
            n = ensure_active_states(should_stop=self._stopping.is_set)
            if n:
                log.info("created the state rows of %d pairs", n)
        except Exception:  # noqa: BLE001 - each pair's cycle creates its own row anyway
            log.exception("could not create the pairs' state rows in bulk")
        finally:
            try:
                dbmod.db.close()  # this thread's connection
            except Exception:  # noqa: BLE001
                pass

    def drain(self, timeout: float | None = None) -> bool:
        """No new cycles; wait up to `timeout` s for in-flight ones. True when none is left running."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._stopping.set()
        if self._started:
            self.slots.stop()
            try:
                self.scheduler.pause()
            except Exception:  # noqa: BLE001
                pass
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._inflight and time.monotonic() < deadline:
                self._cv.wait(max(0.0, deadline - time.monotonic()))
            return self._inflight == 0

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop: no new cycles, wait up to `timeout` s for in-flight ones, close the database.
        Returns True when every in-flight cycle finished in time."""
        clean = self.drain(timeout)
        if self._started:
            self.scheduler.shutdown(wait=False)
            self.pool.shutdown(wait=False)  # daemon threads: a cycle still running is abandoned
            self._started = False
        if clean:
            dbmod.close_database()
        else:
            log.warning("shutdown: %d cycles still running after %.1fs", self._inflight, timeout)
        return clean

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM set `stop_requested` (the caller then calls shutdown()). Main thread only."""

        def handler(signum, frame):
            self.stop_requested.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def run_until_signal(self) -> bool:
        """Convenience for `tradebot run`: start, wait for SIGINT/SIGTERM, shut down gracefully."""
        self.install_signal_handlers()
        self.start()
        while not self.stop_requested.wait(1.0):
            pass
        return self.shutdown()

    # ------------------------------------------------------------ pairs

    def _offset(self, config_id: int, interval: int) -> float:
        if not self.spread or interval <= 1:
            return 0.0
        # golden-ratio spread: evenly covers the interval whatever the ids are, after the first
        # PREFETCH_LEAD seconds of it, when the prefetch job refreshes the market data
        lead = PREFETCH_LEAD if interval >= 4 * PREFETCH_LEAD else 0.0
        return lead + ((config_id * 0.6180339887498949) % 1.0) * (interval - lead)

    def _schedule(self, cfg, now: float | None = None) -> None:
        """Put the pair on the dispatcher at its slot (replaces an earlier schedule of it)."""
        interval = int(cfg.interval_seconds or self.default_interval)
        self.slots.add(cfg.id, interval, self._offset(cfg.id, interval), now)

    # HA mode: the worker (tradebot/ha/worker.py) hands pairs to this engine and takes them back

    def adopt(self, config_id: int, interval, only_if_changed: bool = False, last_slot_ms: int | None = None) -> None:
        """Run this pair here (its lease is ours); with `only_if_changed`, reschedule only a new interval.
        `last_slot_ms`: the last slot any holder ran; when the grid's latest slot is newer (missed while the
        pair moved off a dead worker), that slot runs at once instead of waiting for the next one."""
        interval = int(interval or self.default_interval)
        if only_if_changed:
            slot = self.slots.slot_of(config_id)
            if slot is not None and int(slot[0]) == interval:
                return
        if self._stopping.is_set():
            return
        offset = self._offset(config_id, interval)
        first = None
        if last_slot_ms is not None:
            now = time.time()
            latest = next_slot(now, interval, offset) - interval
            if last_slot_ms < int(round(latest * 1000)):
                first = latest
        self.slots.add(config_id, interval, offset, first_due=first)

    def let_go(self, config_id: int) -> None:
        """No further cycle of this pair here (one in flight finishes; see is_busy)."""
        self.slots.remove(config_id)
        self.runner.streams.pop(config_id, None)

    def is_busy(self, config_id: int) -> bool:
        return self.slots.is_busy(config_id)

    def cycle_lag_seconds(self) -> int:
        """How long the most overdue due cycle has waited for a worker (health; from memory, no query)."""
        return int(self.slots.lag())

    def pause(self) -> None:
        """No cycle or periodic job starts until resume() (the database lease was lost)."""
        if self._started:
            self.slots.pause()
            self.scheduler.pause()

    def resume(self) -> None:
        if self._started and not self._stopping.is_set():
            self.slots.resume()
            self.scheduler.resume()

    def start_pair(self, config_id: int) -> bool:
        """Mark the pair trading and schedule it. True if it was not running before (idempotent)."""
        cfg = UserConfig.get_by_id(config_id)
        was = self.is_running(config_id)
        with write_tx():
            UserConfig.update(is_trading=True, updated_at=ms_to_dt(self.now_ms())).where(
                UserConfig.id == config_id
            ).execute()
            state = ensure_state(cfg)
            status = (
                "paused"
                if state.breaker_until and state.breaker_until > ms_to_dt(self.now_ms())
                else "running"
            )
            UserState.update(status=status).where(UserState.id == state.id).execute()
        if self.ha is not None:
            self.ha.offer(config_id)  # the worker whose share it fits claims it within a round
        elif self._started and not self._stopping.is_set():
            if config_id not in self.slots:
                self._schedule(cfg)
        return not was

    def stop_pair(self, config_id: int) -> bool:
        """Stop trading the pair (an open position stays as it is). True if it was running."""
        was = self.is_running(config_id)
        self.runner.streams.pop(config_id, None)
        with write_tx():
            n = UserConfig.update(is_trading=False).where(UserConfig.id == config_id).execute()
            UserState.update(status="stopped").where(UserState.config == config_id).execute()
        self.slots.remove(config_id)
        if self.ha is not None:  # (a pair held by another worker leaves it at that worker's next round)
            self.ha.forget(config_id)
        return bool(was and n)

    def stop_user(self, user_id: int) -> int:
        ids = [c.id for c in UserConfig.select(UserConfig.id).where(UserConfig.user == user_id)]
        return sum(1 for i in ids if self.stop_pair(i))

    def stop_all(self) -> int:
        ids = [c.id for c in UserConfig.select(UserConfig.id).where(UserConfig.is_trading == True)]  # noqa: E712
        if self._started:
            ids = sorted(set(ids) | set(self.slots.ids()))
        return sum(1 for i in ids if self.stop_pair(i))

    def is_running(self, config_id: int) -> bool:
        if self._started and self.ha is None:
            return config_id in self.slots
        cfg = UserConfig.get_or_none(UserConfig.id == config_id)
        return bool(cfg and cfg.is_trading)

    def running_pairs(self) -> list[int]:
        return self.slots.ids()

    def reset_breaker(self, config_id: int, include_user: bool = True) -> bool:
        """User reset of the pair's circuit breaker (and of the owner's user-scope breaker)."""
        now_ms = self.now_ms()
        now = ms_to_dt(now_ms)
        cfg = UserConfig.get_by_id(config_id)
        done = False
        with self.runner.lock_for(config_id), write_tx():
            state = ensure_state(cfg)
            book = load_book(cfg, state, open_position(cfg.id))
            if book.breaker_until_ms or book.consecutive_losses:
                had = bool(book.breaker_until_ms)
                core.reset_breaker(book)
                save_state(state.id, book, now, status="running" if cfg.is_trading else "stopped")
                if had:
                    _record_reset(cfg.user_id, cfg.id, cfg.symbol, "pair", "reset by user", now)
                    done = True
            if include_user:
                user = User.get_by_id(cfg.user_id)
                if user.breaker_until is not None:
                    User.update(breaker_until=None, breaker_reason=None).where(User.id == user.id).execute()
                    _record_reset(user.id, None, None, "user", "reset by user", now)
                    done = True
        return done
