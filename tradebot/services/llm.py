"""The AI side as users and admins see it: which deciders this bot offers, /why <symbol> (the pair's last
decision with each member's vote) and the LLM usage report (`tradebot admin llm`, the admin /llm command)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..config_llm import usable_providers
from ..models import AIDecision, LLMAnswer, User, UserConfig, db
from .views import InvalidValue, NotFound


@dataclass(frozen=True)
class MemberVote:
    provider: str
    action: str
    confidence: int
    reasoning: str
    model: str | None = None
    tokens: int | None = None
    latency_ms: int | None = None
    shared: bool = False  # the answer was shared with other pairs


@dataclass(frozen=True)
class WhyView:
    symbol: str
    exchange: str
    decider: str
    at: dt.datetime
    candle_ts: int | None
    action: str
    confidence: int
    reasoning: str
    members: list[MemberVote]


def available_deciders(cfg) -> list[str]:
    """What `/set <symbol> decider` accepts on this bot: technical, llm (when [llm] has a key), llm:<provider>
    for each named provider, and ensemble when every one of its members can run."""
    providers = usable_providers(cfg.llm)
    names = ["technical"] + (["llm"] if "llm" in providers else []) + [f"llm:{p}" for p in providers if p != "llm"]
    if all(_member_ok(m, providers) for m in cfg.ensemble.members):
        names.append("ensemble")
    return names


def _member_ok(member: str, providers: list[str]) -> bool:
    kind = member.strip().lower()
    if kind == "technical":
        return True
    if kind.startswith("llm:"):
        return kind[4:] in providers or "llm" in providers
    return kind in providers


class LLMMixin:
    """AI use cases (part of Services)."""

    def deciders(self) -> list[str]:
        return available_deciders(self.app.cfg)

    def check_decider(self, value: str) -> str:
        value = value.strip().lower()
        offered = self.deciders()
        if value in offered:
            return value
        if value in ("llm", "ensemble") or value.startswith("llm:") or value in offered:
            hint = "the LLM decider is not configured on this bot (ask the administrator)" if value == "llm" \
                else f"{value} is not configured on this bot"
            raise InvalidValue(f"{hint[0].upper()}{hint[1:]}. Deciders here: {', '.join(offered)}.")
        if f"llm:{value}" in offered:
            return f"llm:{value}"
        raise InvalidValue(f"decider must be one of: {', '.join(offered)}.")

    def why(self, user: User, config: UserConfig) -> WhyView:
        config = self.pair_by_id(user, config.id)
        mine = AIDecision.select().where(AIDecision.config == config.id).order_by(AIDecision.id.desc())
        main = mine.where(AIDecision.provider == _label(config.decider, self.app.cfg)).first() or mine.first()
        if main is None:
            raise NotFound(f"No decision stored for {config.symbol} yet: it decides when a candle closes.")
        members = []
        if main.provider == "ensemble":
            rows = (AIDecision.select()
                    .where((AIDecision.config == config.id) & (AIDecision.candle_ts == main.candle_ts)
                           & (AIDecision.id > main.id) & (AIDecision.provider != "ensemble"))
                    .order_by(AIDecision.id))
            seen = set()
            for r in rows:
                if r.provider in seen:
                    continue
                seen.add(r.provider)
                members.append(_vote(r, config))
        elif main.llm_answer_id is not None:
            members.append(_vote(main, config))
        return WhyView(config.symbol, config.exchange, config.decider, main.created_at, main.candle_ts,
                       main.action, main.confidence, main.reasoning or "", members)

    def llm_usage(self, user: User | None = None, days: int = 7):
        if user is not None:
            self.require_admin(user)
        clock = getattr(getattr(self.app, "manager", None), "clock", None)
        today = dt.datetime.fromtimestamp(clock(), dt.UTC).date() if clock else None
        return llm_usage(days, today)


def llm_usage(days: int = 7, today: dt.date | None = None) -> list[tuple]:
    """(day, provider, calls, errors, error %, input tokens, output tokens, cost, avg latency ms), newest
    first: the rows of the llm_usage_daily view."""
    today = today or dt.datetime.now(dt.UTC).date()
    since = today - dt.timedelta(days=max(1, days) - 1)
    p = db.obj.param
    cur = db.execute_sql(
        "SELECT day, provider, calls, errors, error_pct, input_tokens, output_tokens, cost, avg_latency_ms "
        f"FROM llm_usage_daily WHERE day >= {p} ORDER BY day DESC, provider", (since.isoformat(),))
    return [tuple(r) for r in cur.fetchall()]


def _label(decider: str, cfg) -> str:
    """The provider name a pair's decisions are stored under."""
    kind = (decider or "technical").lower()
    if kind == "llm":
        return f"llm:{cfg.llm.model}"
    if kind not in ("technical", "ensemble") and not kind.startswith("llm:"):
        return f"llm:{kind}"
    return kind


def _vote(row, config) -> MemberVote:
    answer = LLMAnswer.get_or_none(LLMAnswer.id == row.llm_answer_id) if row.llm_answer_id else None
    reasoning = (row.reasoning or "").strip().splitlines()[0] if row.reasoning else ""
    if answer is None:
        return MemberVote(row.provider, row.action, row.confidence, reasoning)
    return MemberVote(row.provider, row.action, row.confidence, reasoning, answer.model,
                      answer.input_tokens + answer.output_tokens, answer.latency_ms,
                      shared=answer.config_id != config.id)
