"""What the engine keeps of its decisions, and for how long.

Every buy and sell is one `ai_decisions` row (orders and positions point at it; its outcome is scored when
the position closes). A hold is stored in full only when it says something new: the first hold of a
provider after another action (or after a restart), or an LLM/ensemble hold with a different reasoning.
A hold that repeats the previous one (the technical decider on a quiet market: 1,440 a day per 1m pair) is
counted in `decision_tallies`, one row per pair, provider and UTC day, so the counts in
`ai_provider_stats_by_user` stay exact while the table grows by ~one row per pair per day.

Retention (`trading.decision_retention_days`, applied by the daily job in small batches): full hold rows
older than the window are folded into their day's tally and deleted; tallies older than the window are
folded into one all-time row per pair and provider (day 1970-01-01). Buys and sells are kept. LLM answers
(`llm_answers`) older than the window lose their raw response; their tokens, cost and votes are kept.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict

from ..db import write_tx
from ..models import AIDecision, DecisionTally, LLMAnswer, db

HOLD = "hold"
ALL_TIME = dt.date(1970, 1, 1)


def _verdict(d) -> str:
    """What makes a hold worth a row of its own. The technical decider's reasoning is a pure function of
    the candles (its numbers change every candle): only its action counts. An LLM's reasoning is kept."""
    return "" if d.provider == "technical" else (d.reasoning or "")


class DecisionRecorder:
    """Per-process memory of each (pair, provider)'s last verdict, ~100 bytes per pair."""

    def __init__(self, record_holds: str = "nontechnical"):
        self.record_holds = record_holds  # "all" | "nontechnical" | "none"
        self._last: dict[tuple[int, str], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._sql: tuple[object, str] | None = None

    def wanted(self, decision) -> bool:
        if decision is None:
            return False
        if decision.action != HOLD:
            return True
        if self.record_holds == "none":
            return False
        return not (self.record_holds == "nontechnical" and decision.provider == "technical")

    def record(self, cfg, decision, candle_ts: int, now: dt.datetime) -> AIDecision | None:
        """Store `decision` (call inside the cycle's write transaction). Returns the main row if it was
        stored in full, None if it was counted in a tally (or not recorded)."""
        if not self.wanted(decision):
            return None
        first = None
        for i, d in enumerate([decision, *(decision.parts or [])]):
            key = (cfg.id, d.provider)
            mark = (d.action, _verdict(d))
            with self._lock:
                repeat = d.action == HOLD and self._last.get(key) == mark
                self._last[key] = mark
            if repeat:
                self._tally(cfg, d, candle_ts, now.date())
                continue
            row = AIDecision.create(
                user=cfg.user_id,
                config=cfg.id,
                symbol=cfg.symbol,
                provider=d.provider,
                action=d.action,
                confidence=int(d.confidence),
                reasoning=d.reasoning,
                inputs=d.inputs or None,
                response=d.response or None,
                candle_ts=candle_ts,
                created_at=now,
                llm_answer=getattr(getattr(d.call, "answer", None), "answer_id", None),
            )
            if i == 0:
                first = row
        return first

    def forget(self, config_id: int) -> None:
        with self._lock:
            for key in [k for k in self._last if k[0] == config_id]:
                del self._last[key]

    def _tally(self, cfg, d, candle_ts: int, day: dt.date) -> None:
        database = db.obj
        if self._sql is None or self._sql[0] is not database:
            p = database.param
            self._sql = (database, (
                'INSERT INTO decision_tallies (user_id, config_id, symbol, provider, action, day, decisions, '
                f"confidence_sum, last_candle_ts) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, 1, {p}, {p}) "
                "ON CONFLICT (config_id, provider, action, day) DO UPDATE SET "
                "decisions = decision_tallies.decisions + 1, "
                "confidence_sum = decision_tallies.confidence_sum + excluded.confidence_sum, "
                "last_candle_ts = excluded.last_candle_ts"
            ))
        database.execute_sql(self._sql[1], (cfg.user_id, cfg.id, cfg.symbol, d.provider, d.action,
                                            day.isoformat(), int(d.confidence), candle_ts))


# ---------------------------------------------------------------- retention


def _add(key: tuple, n: int, conf: int, ts, user_id: int, symbol: str) -> None:
    user_id, config_id, provider, action, day = key[0], key[1], key[2], key[3], key[4]
    q = DecisionTally.select().where(
        (DecisionTally.config == config_id) & (DecisionTally.provider == provider)
        & (DecisionTally.action == action) & (DecisionTally.day == day)
    )
    row = q.first() if config_id is not None else None
    if row is None:
        DecisionTally.create(user=user_id, config=config_id, symbol=symbol, provider=provider, action=action,
                             day=day, decisions=n, confidence_sum=conf, last_candle_ts=ts)
    else:
        DecisionTally.update(
            decisions=DecisionTally.decisions + n,
            confidence_sum=DecisionTally.confidence_sum + conf,
        ).where(DecisionTally.id == row.id).execute()


def apply_retention(retention_days: int, today: dt.date, *, batch: int = 500, pause: float = 0.02,
                    should_stop=lambda: False) -> dict:
    """Fold holds and tallies older than `retention_days` (see the module doc). Works in transactions of
    at most `batch` rows with a short pause between them, so trading cycles are never held up."""
    cutoff = today - dt.timedelta(days=retention_days)
    lo = dt.datetime(cutoff.year, cutoff.month, cutoff.day)
    folded_rows = folded_tallies = 0
    while not should_stop():
        rows = list(
            AIDecision.select(AIDecision.id, AIDecision.user, AIDecision.config, AIDecision.symbol,
                              AIDecision.provider, AIDecision.action, AIDecision.confidence,
                              AIDecision.candle_ts, AIDecision.created_at)
            .where((AIDecision.action == HOLD) & (AIDecision.created_at < lo))
            .order_by(AIDecision.id).limit(batch)
        )
        if not rows:
            break
        sums: dict[tuple, list] = defaultdict(lambda: [0, 0, None, None, None])
        for r in rows:
            s = sums[(r.user_id, r.config_id, r.provider, r.action, r.created_at.date())]
            s[0] += 1
            s[1] += r.confidence or 0
            s[2] = r.candle_ts
            s[3], s[4] = r.user_id, r.symbol
        with write_tx():
            for key, (n, conf, ts, user_id, symbol) in sums.items():
                _add(key, n, conf, ts, user_id, symbol)
            AIDecision.delete().where(AIDecision.id.in_([r.id for r in rows])).execute()
        folded_rows += len(rows)
        time.sleep(pause)
    while not should_stop():
        old = list(
            DecisionTally.select()
            .where((DecisionTally.day < cutoff) & (DecisionTally.day > ALL_TIME))
            .order_by(DecisionTally.id).limit(batch)
        )
        if not old:
            break
        with write_tx():
            for t in old:
                _add((t.user_id, t.config_id, t.provider, t.action, ALL_TIME), t.decisions, t.confidence_sum,
                     t.last_candle_ts, t.user_id, t.symbol)
            DecisionTally.delete().where(DecisionTally.id.in_([t.id for t in old])).execute()
        folded_tallies += len(old)
        time.sleep(pause)
    return {"holds_folded": folded_rows, "tallies_folded": folded_tallies}


def trim_llm_responses(retention_days: int, today: dt.date, *, batch: int = 500, pause: float = 0.02,
                       should_stop=lambda: False) -> int:
    """Drop the raw response of LLM answers older than the window; tokens, cost and votes stay."""
    cutoff = today - dt.timedelta(days=retention_days)
    trimmed = 0
    while not should_stop():
        ids = [r.id for r in LLMAnswer.select(LLMAnswer.id).where(
            (LLMAnswer.day < cutoff) & LLMAnswer.response.is_null(False)).order_by(LLMAnswer.id).limit(batch)]
        if not ids:
            break
        with write_tx():
            LLMAnswer.update(response=None).where(LLMAnswer.id.in_(ids)).execute()
        trimmed += len(ids)
        time.sleep(pause)
    return trimmed
