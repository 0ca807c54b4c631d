"""The engine's side of LLM calls: stores every answer (`llm_answers`), enforces the daily budgets and tells
people about budgets and failing providers.

- Budgets (UTC day, `[llm]` daily_token_budget / daily_cost_budget for the instance, user_daily_token_budget /
  user_daily_cost_budget per user; 0 = none). A call is charged to the user whose pair made it (a shared
  answer costs the other pairs nothing). Once spending reaches a cap no new call is made: the member is
  skipped (an ensemble decides with the members that remain, see strategy/ensemble.py). The call that
  crosses a cap is not cut short: a cap is reached, not overshot by more than one answer.
- Notices: the first skip of the day tells the user (user cap) or the admins (instance cap), once per day
  (the outbox is checked, so a restart does not repeat it). A provider whose calls have all failed for an
  hour is reported to the admins once, again only after it has answered in between.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from decimal import Decimal

from .. import events
from ..db import write_tx
from ..models import LLMAnswer, Notification, User

log = logging.getLogger(__name__)

ZERO = Decimal("0")
FAILING_SECONDS = 3600


class LLMLedger:
    def __init__(self, llm_cfg=None, admin_ids=(), clock=None):
        import time

        g = (lambda k, d: getattr(llm_cfg, k, d)) if llm_cfg is not None else (lambda k, d: d)
        self.instance_tokens = int(g("daily_token_budget", 0) or 0)
        self.instance_cost = Decimal(str(g("daily_cost_budget", 0) or 0))
        self.user_tokens = int(g("user_daily_token_budget", 0) or 0)
        self.user_cost = Decimal(str(g("user_daily_cost_budget", 0) or 0))
        self.admin_ids = [int(i) for i in admin_ids or ()]
        self.clock = clock or time.time
        self._lock = threading.Lock()
        self._spent: dict[tuple, list] = {}  # (day, user_id or None) -> [tokens, cost]
        self._failing_since: dict[str, float] = {}
        self._reported: set[str] = set()
        self._noticed: set[tuple] = set()  # (day, user id or None) whose budget notice is settled

    def gate(self, cfg) -> PairGate:
        return PairGate(self, cfg)

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()

    # ------------------------------------------------------------ spending

    def spent(self, day: dt.date, user_id: int | None) -> tuple[int, Decimal]:
        key = (day, user_id)
        with self._lock:
            hit = self._spent.get(key)
        if hit is None:
            q = LLMAnswer.select(LLMAnswer.input_tokens, LLMAnswer.output_tokens, LLMAnswer.cost).where(
                LLMAnswer.day == day)
            if user_id is not None:
                q = q.where(LLMAnswer.user == user_id)
            tokens, cost = 0, ZERO
            for r in q.tuples().iterator():
                tokens += r[0] + r[1]
                cost += Decimal(r[2] or 0)
            with self._lock:
                hit = self._spent.setdefault(key, [tokens, cost])
                if len(self._spent) > 10_000:  # old days
                    for k in [k for k in self._spent if k[0] != day]:
                        del self._spent[k]
        return hit[0], hit[1]

    def skip_reason(self, user_id: int) -> str:
        day = self.today()
        if self.instance_tokens or self.instance_cost:
            tokens, cost = self.spent(day, None)
            why = _over(tokens, cost, self.instance_tokens, self.instance_cost)
            if why:
                self._notice_once(day, None, why)
                return f"skipped: the bot's daily LLM budget is reached ({why})"
        if self.user_tokens or self.user_cost:
            tokens, cost = self.spent(day, user_id)
            why = _over(tokens, cost, self.user_tokens, self.user_cost)
            if why:
                self._notice_once(day, user_id, why)
                return f"skipped: your daily LLM budget is reached ({why})"
        return ""

    def record(self, answer, cfg) -> None:
        """Store `answer` (made by `cfg`'s cycle), count what it cost, watch for failing providers."""
        if not answer.called:
            return
        day = self.today()
        meta = answer.meta or {}
        with write_tx():
            row = LLMAnswer.create(
                provider=answer.provider, model=answer.model[:128], prompt_hash=answer.prompt_hash,
                user=cfg.user_id, config=cfg.id, exchange=(meta.get("exchange") or cfg.exchange or "")[:16],
                symbol=(meta.get("symbol") or cfg.symbol)[:32], timeframe=(meta.get("timeframe") or "")[:8],
                candle_ts=meta.get("candle_ts"), state=meta.get("state") or "flat", ok=answer.ok,
                action=answer.action if answer.ok else None, confidence=answer.confidence if answer.ok else None,
                reasoning=answer.reasoning or None, error=answer.error or None, latency_ms=answer.latency_ms,
                input_tokens=answer.input_tokens, output_tokens=answer.output_tokens, cost=answer.cost,
                response=answer.raw or None, day=day, created_at=dt.datetime.fromtimestamp(
                    self.clock(), dt.UTC).replace(tzinfo=None),
            )
        answer.answer_id = row.id
        used = answer.input_tokens + answer.output_tokens
        self.spent(day, None)
        self.spent(day, cfg.user_id)
        with self._lock:
            for key in ((day, None), (day, cfg.user_id)):
                self._spent[key][0] += used
                self._spent[key][1] += answer.cost
        self._watch(answer)

    # ------------------------------------------------------------ notices

    def _watch(self, answer) -> None:
        now = self.clock()
        unavailable = not answer.ok and answer.error.startswith("LLM unavailable")
        with self._lock:
            if not unavailable:
                self._failing_since.pop(answer.provider, None)
                self._reported.discard(answer.provider)
                return
            since = self._failing_since.setdefault(answer.provider, now)
            due = now - since >= FAILING_SECONDS and answer.provider not in self._reported
            if due:
                self._reported.add(answer.provider)
        if due:
            log.warning("%s has failed every call for %d minutes: %s", answer.provider,
                        (now - since) // 60, answer.error)
            self._to_admins("llm_provider_failing", {"provider": answer.provider, "minutes": int((now - since) // 60),
                                                     "error": answer.error[:200]})

    def _notice_once(self, day: dt.date, user_id: int | None, why: str) -> None:
        with self._lock:  # checked in the outbox once per process and day, then remembered
            if (day, user_id) in self._noticed:
                return
            self._noticed.add((day, user_id))
        scope = "user" if user_id is not None else "instance"
        targets = [user_id] if user_id is not None else self._admin_user_ids()
        start = dt.datetime(day.year, day.month, day.day)
        for uid in targets:
            sent = Notification.select(Notification.id).where(
                (Notification.user == uid) & (Notification.kind == "llm_budget")
                & (Notification.created_at >= start)).exists()
            if not sent:
                with write_tx():
                    events.emit(uid, "llm_budget", {"scope": scope, "why": why, "day": day.isoformat()})

    def _admin_user_ids(self) -> list[int]:
        if not self.admin_ids:
            return []
        return [u.id for u in User.select(User.id).where(User.telegram_id.in_(self.admin_ids))]

    def _to_admins(self, kind: str, payload: dict) -> None:
        ids = self._admin_user_ids()
        if ids:
            with write_tx():
                for uid in ids:
                    events.emit(uid, kind, payload)


def _over(tokens: int, cost: Decimal, max_tokens: int, max_cost: Decimal) -> str:
    if max_tokens and tokens >= max_tokens:
        return f"{tokens} of {max_tokens} tokens used today"
    if max_cost and cost >= max_cost:
        return f"${cost.quantize(Decimal('0.0001'))} of ${max_cost} spent today"
    return ""


class PairGate:
    """What an LLM member sees of the ledger while deciding for one pair."""

    __slots__ = ("ledger", "cfg")

    def __init__(self, ledger: LLMLedger, cfg):
        self.ledger, self.cfg = ledger, cfg

    def skip_reason(self, provider: str) -> str:
        return self.ledger.skip_reason(self.cfg.user_id)

    def record(self, answer) -> None:
        self.ledger.record(answer, self.cfg)
