"""AI replies: /why <symbol>, the admin /llm usage report and the LLM notices (budget, failing provider)."""

from __future__ import annotations

from .base import e


def why(view) -> str:
    when = f"{view.at:%Y-%m-%d %H:%M} UTC" if view.at else ""
    lines = [
        f"🧠 <b>{e(view.symbol)}</b> ({e(view.exchange)}), decider {e(view.decider)}",
        f"Last decision {when}: <b>{e(view.action)}</b> (confidence {view.confidence})",
        e(_line(view.reasoning, 300)),
    ]
    if view.members:
        lines.append("")
        for m in view.members:
            extra = []
            if m.model:
                extra.append(e(m.model))
            if m.tokens:
                extra.append(f"{m.tokens} tokens")
            if m.latency_ms:
                extra.append(f"{m.latency_ms} ms")
            if m.shared:
                extra.append("shared answer")
            tail = f" <i>({', '.join(extra)})</i>" if extra else ""
            lines.append(f"• {e(m.provider)}: <b>{e(m.action)}</b> {m.confidence}{tail} — {e(_line(m.reasoning, 160))}")
    return "\n".join(lines)


def _line(text: str, limit: int) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def llm_usage(rows) -> str:
    if not rows:
        return "🧠 No LLM calls in the last 7 days."
    lines = ["🧠 <b>LLM usage</b> (UTC days, last 7)"]
    day = None
    for d, provider, calls, errors, err_pct, tin, tout, cost, latency in rows:
        if d != day:
            day = d
            lines += ["", f"<b>{e(str(d))}</b>"]
        lines.append(f"{e(provider)}: {calls} calls, {errors} errors ({err_pct or 0}%), {tin + tout} tokens "
                     f"({tin} in / {tout} out), ${e(str(cost))}, avg {latency or 0} ms")
    return "\n".join(lines)


def deciders_line(names) -> str:
    return "Deciders for /set &lt;symbol&gt; decider: " + ", ".join(e(n) for n in names)


def llm_event(kind: str, p: dict) -> str | None:
    if kind == "llm_budget":
        who = "Your" if p.get("scope") == "user" else "The bot's"
        return (f"💸 {who} daily LLM budget is reached ({e(p.get('why') or '')}). AI members are skipped until "
                f"midnight UTC; ensembles decide with the members that remain.")
    if kind == "llm_provider_failing":
        return (f"🚨 LLM provider {e(p.get('provider') or '')} has failed every call for {e(p.get('minutes') or 60)} "
                f"minutes: {e(p.get('error') or '')}. Its members abstain meanwhile.")
    return None
