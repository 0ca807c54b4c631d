"""Running pair cycles as dispatcher jobs: one cycle, its error recorded on the pair (one pair_error event
per change of error) and cleared after a good cycle, start lag for the bench, the market-data prefetch job."""

from __future__ import annotations

import datetime as dt
import logging
import time

from .. import events
from ..db import write_tx
from ..models import UserConfig, UserState
from .book_rows import dt_to_ms, ensure_state, ms_to_dt
from .errors import needs_user_action, user_message

log = logging.getLogger("tradebot.engine.manager")


class CycleJobs:
    """Part of BotManager."""

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

    def _job(self, config_id: int, due: float | None = None) -> None:
        """One scheduled cycle; `due`: its slot (epoch seconds), for the start lag the bench reads."""
        if self._stopping.is_set():
            return
        ha = getattr(self, "ha", None)
        if ha is not None and due is not None:
            try:
                if not ha.begin_slot(config_id, due):
                    return  # the lease is not ours any more, or this slot already ran (here or on its previous holder)
            except Exception as exc:  # noqa: BLE001 - database unreachable: no cycle without the lease check
                log.warning("pair %s: cycle skipped, lease check failed: %s", config_id, type(exc).__name__)
                return
        with self._cv:
            self._inflight += 1
        fg = self.foreground
        fg.cycle_start(due)  # steps aside (bounded) while chat replies are being worked on
        try:
            if self.record_lag and due is not None:  # bench: start lag against the pair's slot
                t = time.time()
                self.stats["lags"].append(t - due)
                self.stats["lag_t"].append((t, t - due))
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
            fg.cycle_end()
            with self._cv:
                self._inflight -= 1
                self._cv.notify_all()

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
