"""The 00:00 UTC job: each user's daily summary event and the decision-retention sweep."""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal

from peewee import fn

from .. import events
from ..db import write_tx
from ..models import DailyPerformance, Notification, Trade, UserConfig, UserState
from .accounting import DAY_MS
from .book_rows import day_to_date
from .decisions import apply_retention, trim_llm_responses

log = logging.getLogger("tradebot.engine.manager")

ZERO = Decimal(0)


class DailySummary:
    """Part of BotManager."""

    def _daily_job(self) -> None:
        if self._stopping.is_set():
            return
        day = self.now_ms() // DAY_MS - 1
        gate = getattr(self, "daily_gate", None)
        try:
            if gate is not None and not gate(day_to_date(day)):
                return  # another worker runs it today
        except Exception:  # noqa: BLE001
            log.exception("daily job: could not ask whether to run it here")
            return
        try:
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
            trim_llm_responses(self.decision_retention_days, day_to_date(day + 1), should_stop=self._stopping.is_set)
        except Exception:  # noqa: BLE001
            log.exception("decision retention failed")

    def daily_summary(self, day: dt.date, batch: int = 25, pause: float = 0.05) -> int:
        """Emit one `daily_summary` event per user with pairs, for the UTC `day`. Idempotent. Returns count.

        A handful of set-wide queries (not a few per pair), then the events in transactions of `batch`
        users with a short pause between them: every cycle's write waits for the writer lock, so the job
        holds it a few ms at a time and spreads the rest (4,000 users: ~10 s) instead of one long burst."""
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
