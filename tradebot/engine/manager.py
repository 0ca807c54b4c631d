"""BotManager: every active pair of every user as one APScheduler job in ONE BackgroundScheduler.

- one interval job per active pair (`pair:<config_id>`), max_instances=1 + coalesce: a slow cycle never
  overlaps itself and missed runs collapse into one; start times are spread over the interval by a fixed
  per-pair offset so a thousand pairs do not all fire at second 0;
- a cron job at 00:00 UTC writes the daily summary event of every user;
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
from . import core
from .book_rows import ensure_state, load_book, ms_to_dt, open_position, save_state
from .breaker import record_reset as _record_reset
from .cycle import CycleRunner
from .cycle_jobs import CycleJobs, _job_id
from .daily import DailySummary
from .pool import DaemonPoolExecutor
from .scheduler_logs import quiet_scheduler_logs

log = logging.getLogger(__name__)

ZERO = Decimal(0)
UTC = dt.UTC

RESUME_INLINE = 2000  # pairs scheduled before start() returns; the rest by a background thread
PREFETCH_LEAD = 5.0  # seconds after each minute when no pair starts; market data is refreshed then


class _PairRef:
    """What _schedule needs of a pair."""

    __slots__ = ("id", "interval_seconds")

    def __init__(self, config_id: int, interval: int):
        self.id, self.interval_seconds = config_id, interval


def _deciders(source):
    """A `name -> Decider` function from a factory callable or from settings (Config with .llm/.ensemble)."""
    cache: dict[str, object] = {}
    lock = threading.Lock()
    if callable(source) and not hasattr(source, "llm"):
        def build(name):
            return source(name.partition("@")[0])  # a plain factory knows no presets
    else:
        from ..strategy.factory import build_decider

        llm = getattr(source, "llm", None)
        ens = getattr(source, "ensemble", None)
        presets = getattr(source, "presets", None)

        def build(name):
            return build_decider(name, llm, ens, presets)

    def decider_for(name: str):
        d = cache.get(name)
        if d is None:
            with lock:
                d = cache.get(name)
                if d is None:
                    d = cache[name] = build(name)
        return d

    return decider_for


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
        self.runner = CycleRunner(
            hub,
            _deciders(src),
            vault=vault,
            indicators=getattr(hub, "indicators", None),
            candle_limit=candle_limit,
            record_holds=record_holds,
            user_limits=user_limits,
        )
        quiet_scheduler_logs()
        self.scheduler = BackgroundScheduler(
            executors={"default": DaemonPoolExecutor(self.max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._started = False
        self._stopping = threading.Event()
        self.stop_requested = threading.Event()
        self._inflight = 0
        self._cv = threading.Condition()
        self.stats = {"cycles": 0, "errors": 0, "lags": [], "durations": []}
        self.stats["lag_at"] = self.stats["lags"]  # same list (bench/engine.py reads it by position)
        self.stats["lag_t"] = []  # (when, lag) of each cycle start
        self.record_lag = False

    # ------------------------------------------------------------ lifecycle

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> dict:
        """Start the scheduler, reconcile pending intents, resume trading pairs, schedule the summary."""
        if self._started:
            return {}
        counts = self.runner.reconcile_pending(now_ms=self.now_ms())
        # Jobs added before the scheduler starts are stored in one pass, without waking its thread for
        # every one of them. APScheduler spends ~0.3 ms building a job: beyond RESUME_INLINE pairs the
        # rest are added by a background thread, so `tradebot run` polls Telegram within a second or two
        # whatever the number of pairs (a pair's first cycle is at its slot of the minute anyway).
        now = time.time()
        ids = [
            (c.id, c.interval_seconds)
            for c in UserConfig.select(UserConfig.id, UserConfig.interval_seconds)
            .where(UserConfig.is_trading == True)  # noqa: E712
            .order_by(UserConfig.id)
            .namedtuples()
        ]
        resumed = self._resume(ids[:RESUME_INLINE], now)
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
        self._started = True
        if len(ids) > RESUME_INLINE:
            rest = ids[RESUME_INLINE:]
            self._resumer = threading.Thread(
                target=self._resume, args=(rest, None), name="resume-pairs", daemon=True
            )
            self._resumer.start()
            resumed += len(rest)
        log.info("engine started: %d pairs resumed, reconcile %s", resumed, counts)
        return {"resumed": resumed, **counts}

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop: no new cycles, wait up to `timeout` s for in-flight ones, close the database.
        Returns True when every in-flight cycle finished in time."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._stopping.set()
        if self._started:
            try:
                self.scheduler.pause()
            except Exception:  # noqa: BLE001
                pass
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._inflight and time.monotonic() < deadline:
                self._cv.wait(max(0.0, deadline - time.monotonic()))
            clean = self._inflight == 0
        if self._started:
            self.scheduler.shutdown(wait=False)
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

    def _resume(self, pairs: list[tuple[int, int]], now: float | None) -> int:
        """Schedule (config id, interval) pairs; returns how many. `now` None: the scheduler runs."""
        done = 0
        t0 = time.monotonic()
        for config_id, interval in pairs:
            if self._stopping.is_set():
                break
            try:
                self._schedule(_PairRef(config_id, interval), now if now is not None else time.time())
                done += 1
            except Exception:  # noqa: BLE001
                log.exception("could not resume pair %s", config_id)
        if now is None:
            log.info("resumed %d more pairs in %.1f s", done, time.monotonic() - t0)
        return done

    def _offset(self, config_id: int, interval: int) -> float:
        if not self.spread or interval <= 1:
            return 0.0
        # golden-ratio spread: evenly covers the interval whatever the ids are, after the first
        # PREFETCH_LEAD seconds of it, when the prefetch job refreshes the market data
        lead = PREFETCH_LEAD if interval >= 4 * PREFETCH_LEAD else 0.0
        return lead + ((config_id * 0.6180339887498949) % 1.0) * (interval - lead)

    def _schedule(self, cfg: UserConfig, now: float | None = None) -> None:
        interval = int(cfg.interval_seconds or self.default_interval)
        now = time.time() if now is None else now
        # align to the interval grid plus the pair's offset so restarts keep the same phase
        base = (now // interval) * interval + self._offset(cfg.id, interval)
        while base <= now:
            base += interval
        first = base
        self.scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=interval, start_date=dt.datetime.fromtimestamp(first, UTC), timezone=UTC),
            args=(cfg.id,),
            id=_job_id(cfg.id),
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, interval),
        )

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
        if self._started and not self._stopping.is_set():
            if self.scheduler.get_job(_job_id(config_id)) is None:
                self._schedule(cfg)
        return not was

    def stop_pair(self, config_id: int) -> bool:
        """Stop trading the pair (an open position stays as it is). True if it was running."""
        was = self.is_running(config_id)
        self.runner.streams.pop(config_id, None)
        with write_tx():
            n = UserConfig.update(is_trading=False).where(UserConfig.id == config_id).execute()
            UserState.update(status="stopped").where(UserState.config == config_id).execute()
        if self._started:
            try:
                self.scheduler.remove_job(_job_id(config_id))
            except Exception:  # noqa: BLE001 - JobLookupError: not scheduled
                pass
        return bool(was and n)

    def stop_user(self, user_id: int) -> int:
        ids = [c.id for c in UserConfig.select(UserConfig.id).where(UserConfig.user == user_id)]
        return sum(1 for i in ids if self.stop_pair(i))

    def stop_all(self) -> int:
        ids = [c.id for c in UserConfig.select(UserConfig.id).where(UserConfig.is_trading == True)]  # noqa: E712
        if self._started:
            ids = sorted(
                set(ids)
                | {int(j.id.split(":")[1]) for j in self.scheduler.get_jobs() if j.id.startswith("pair:")}
            )
        return sum(1 for i in ids if self.stop_pair(i))

    def is_running(self, config_id: int) -> bool:
        if self._started:
            return self.scheduler.get_job(_job_id(config_id)) is not None
        cfg = UserConfig.get_or_none(UserConfig.id == config_id)
        return bool(cfg and cfg.is_trading)

    def running_pairs(self) -> list[int]:
        return [int(j.id.split(":")[1]) for j in self.scheduler.get_jobs() if j.id.startswith("pair:")]

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
