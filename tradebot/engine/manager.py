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
from peewee import fn

from .. import db as dbmod
from .. import events, risk
from ..db import write_tx
from ..models import DailyPerformance, Notification, Trade, User, UserConfig, UserState
from . import core
from .accounting import DAY_MS
from .book_rows import day_to_date, dt_to_ms, ensure_state, load_book, ms_to_dt, open_position, save_state
from .breaker import record_reset as _record_reset
from .cycle import CycleRunner
from .decisions import apply_retention
from .errors import needs_user_action, user_message
from .pool import DaemonPoolExecutor

log = logging.getLogger(__name__)

ZERO = Decimal(0)
UTC = dt.UTC


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


RESUME_INLINE = 2000  # pairs scheduled before start() returns; the rest by a background thread
PREFETCH_LEAD = 5.0  # seconds after each minute when no pair starts; market data is refreshed then


class _PairRef:
    """What _schedule needs of a pair."""

    __slots__ = ("id", "interval_seconds")

    def __init__(self, config_id: int, interval: int):
        self.id, self.interval_seconds = config_id, interval


def _job_id(config_id: int) -> str:
    return f"pair:{config_id}"


def _deciders(source):
    """A `name -> Decider` function from a factory callable or from settings (Config with .llm/.ensemble)."""
    cache: dict[str, object] = {}
    lock = threading.Lock()
    if callable(source) and not hasattr(source, "llm"):
        build = source
    else:
        from ..strategy.factory import build_decider

        llm = getattr(source, "llm", None)
        ens = getattr(source, "ensemble", None)

        def build(name):
            return build_decider(name, llm, ens)

    def decider_for(name: str):
        d = cache.get(name)
        if d is None:
            with lock:
                d = cache.get(name)
                if d is None:
                    d = cache[name] = build(name)
        return d

    return decider_for


class BotManager:
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

    # ------------------------------------------------------------ cycles

    def run_cycle(self, config_id: int, now=None) -> dict:
        """Run one cycle synchronously (tests, drivers). `now`: datetime (UTC), ms int, or None = clock.
        Exceptions are recorded like scheduled cycles and then re-raised."""
        now_ms = self._to_ms(now)
        try:
            out = self.runner.run(config_id, now_ms)
        except Exception as exc:
            self._record_error(config_id, exc, now_ms)
            raise
        self._after_cycle(config_id, out, now_ms)
        return out

    def _to_ms(self, now) -> int:
        if now is None:
            return self.now_ms()
        if isinstance(now, dt.datetime):
            return dt_to_ms(now)
        return int(now)

    def _job(self, config_id: int) -> None:
        if self._stopping.is_set():
            return
        with self._cv:
            self._inflight += 1
        try:
            if self.record_lag:  # bench: start lag against this pair's schedule grid
                self._note_lag(config_id)
            now_ms = self.now_ms()
            t0 = time.perf_counter()
            try:
                out = self.runner.run(config_id, now_ms, require_active=True)
                if out.get("inactive"):
                    # stopped, removed or blocked from outside this process (`tradebot admin block`)
                    log.info("pair %s is no longer active; dropping its job", config_id)
                    self.stop_pair(config_id)
                    return
                if self.record_lag:
                    self.stats["durations"].append(time.perf_counter() - t0)
                with self._cv:
                    self.stats["cycles"] += 1
                self._after_cycle(config_id, out, now_ms)
            except Exception as exc:  # noqa: BLE001 - isolation: record, never propagate
                with self._cv:
                    self.stats["errors"] += 1
                try:
                    # logged when the pair's error changes, not every cycle it persists (log volume
                    # follows events: a pair failing every minute for a day is one line, not 1,440)
                    if self._record_error(config_id, exc, now_ms):
                        log.warning("pair %s cycle failed: %s", config_id, user_message(exc))
                except Exception:  # noqa: BLE001
                    log.exception("could not record the error of pair %s", config_id)
        finally:
            with self._cv:
                self._inflight -= 1
                self._cv.notify_all()

    def _note_lag(self, config_id: int) -> None:
        job = self.scheduler.get_job(_job_id(config_id))
        if job is None:
            return
        interval = job.trigger.interval.total_seconds()
        t = time.time()
        lag = (t - self._offset(config_id, int(interval))) % interval
        self.stats["lags"].append(lag)
        self.stats["lag_t"].append((t, lag))

    def _record_error(self, config_id: int, exc: BaseException, now_ms: int) -> bool:
        return self._record_problem(
            config_id, user_message(exc), needs_user_action(exc), now_ms, status="error"
        )

    def _record_problem(
        self, config_id: int, msg: str, needs_action: bool, now_ms: int, status: str | None = None
    ) -> bool:
        """Store the pair's current problem; ONE pair_error event per change of problem, not per cycle.
        Returns True when the problem changed."""
        cfg = UserConfig.get_or_none(UserConfig.id == config_id)
        if cfg is None:
            return False
        with write_tx():
            state = ensure_state(cfg)
            changed = state.last_error != msg
            fields = {
                "last_error": msg,
                "error_count": UserState.error_count + 1,
                "updated_at": ms_to_dt(now_ms),
            }
            if status is not None:
                fields["status"] = status
            UserState.update(**fields).where(UserState.id == state.id).execute()
            if changed:
                events.emit(
                    cfg.user_id,
                    "pair_error",
                    {"symbol": cfg.symbol, "message": msg, "needs_action": needs_action},
                    cfg.id,
                )
        return changed

    def _after_cycle(self, config_id: int, out: dict, now_ms: int) -> None:
        problem = out.get("problem") if out else None
        if problem:
            self._record_problem(config_id, problem[0], problem[1], now_ms)
        elif not out or out.get("had_error", True):  # no write when there was no error to clear
            self._clear_error(config_id)

    def _clear_error(self, config_id: int) -> None:
        UserState.update(last_error=None).where(
            (UserState.config == config_id) & UserState.last_error.is_null(False)
        ).execute()

    def _prefetch_job(self) -> None:
        if self._stopping.is_set() or not self.spread:
            return
        try:
            self.runner.prefetch(self.now_ms())
        except Exception:  # noqa: BLE001
            log.exception("market data prefetch failed")

    # ------------------------------------------------------------ daily summary

    def _daily_job(self) -> None:
        if self._stopping.is_set():
            return
        try:
            day = self.now_ms() // DAY_MS - 1
            self.daily_summary(day_to_date(day))
        except Exception:  # noqa: BLE001
            log.exception("daily summary failed")
        try:
            out = apply_retention(
                self.decision_retention_days,
                day_to_date(day + 1),
                should_stop=self._stopping.is_set,
            )
            if any(out.values()):
                log.info("decision retention (%d days): %s", self.decision_retention_days, out)
        except Exception:  # noqa: BLE001
            log.exception("decision retention failed")

    def daily_summary(self, day: dt.date, batch: int = 200, pause: float = 0.02) -> int:
        """Emit one `daily_summary` event per user with pairs, for the UTC `day`. Idempotent. Returns count.

        A handful of set-wide queries (not a few per pair), then the events in transactions of `batch`
        users with a short pause between them: at 20,000 pairs the job neither holds the database nor the
        interpreter long enough to delay a trading cycle."""
        lo = dt.datetime(day.year, day.month, day.day)
        hi = lo + dt.timedelta(days=1)
        tag = f'"day": "{day.isoformat()}"'
        done = {
            uid
            for (uid,) in Notification.select(Notification.user)
            .where((Notification.kind == "daily_summary") & (Notification.payload.contains(tag)))
            .tuples()
        }
        perf = dict(
            DailyPerformance.select(DailyPerformance.config, DailyPerformance.pnl)
            .where(DailyPerformance.day == day)
            .tuples()
        )
        counts = dict(
            Trade.select(Trade.config, fn.COUNT(Trade.id))
            .where((Trade.executed_at >= lo) & (Trade.executed_at < hi))
            .group_by(Trade.config)
            .tuples()
        )
        per_user: dict[int, list] = {}
        rows = (
            UserState.select(
                UserState.user, UserState.equity, UserState.daily_pnl, UserState.daily_pnl_date,
                UserConfig.id, UserConfig.symbol,
            )
            .join(UserConfig)
            .order_by(UserState.user, UserConfig.id)
            .tuples()
        )
        for user_id, equity, daily_pnl, pnl_date, config_id, symbol in rows:
            if user_id in done:
                continue
            if config_id in perf:
                pnl = perf[config_id]
            elif pnl_date == day:
                pnl = daily_pnl or ZERO
            else:
                pnl = ZERO
            per_user.setdefault(user_id, []).append(
                {"symbol": symbol, "equity": equity, "pnl": pnl, "trades": counts.get(config_id, 0)}
            )
        sent = 0
        users = sorted(per_user)
        for i in range(0, len(users), batch):
            if i:
                time.sleep(pause)
            with write_tx():
                for user_id in users[i:i + batch]:
                    pairs = per_user[user_id]
                    events.emit(
                        user_id,
                        "daily_summary",
                        {
                            "day": day.isoformat(),
                            "pairs": pairs,
                            "total_equity": sum((p["equity"] for p in pairs), ZERO),
                            "total_pnl": sum((p["pnl"] for p in pairs), ZERO),
                        },
                    )
                    sent += 1
        return sent
