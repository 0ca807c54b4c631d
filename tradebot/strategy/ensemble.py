"""Ensemble: act only when enough members agree with enough confidence.

- A member's vote counts when its action is not hold and its confidence >= `min_confidence`.
- Votes are grouped by action (buy | sell | short | close; a close while long counts as sell). The side with
  the largest summed weight wins (weight 1 unless configured); a tie holds. The winner also needs at least
  `min_agree` members.
- A member that failed (timeout, malformed answer, refusal) abstains: it counts as not agreeing, so with
  min_agree = 2 of technical + one LLM a failing LLM means hold (never a trade on a half answer).
- A member skipped because a daily LLM budget is reached is left out: the ensemble decides with the
  members that remain and `min_agree` is lowered to their number (technical alone still trades).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .base import Decider, Decision, DecisionContext

SIDES = ("buy", "sell", "short", "close")


class EnsembleDecider:
    name = "ensemble"
    wants_market = True  # passes the engine's MarketInfo on to its LLM members

    def __init__(self, members: Sequence[Decider], min_agree: int = 2, min_confidence: int = 60,
                 weights: Mapping[str, float] | Sequence[float] | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if not 1 <= min_agree <= len(members):
            raise ValueError(f"min_agree must be between 1 and {len(members)}")
        self.members = list(members)
        self.min_agree = min_agree
        self.min_confidence = min_confidence
        if weights is None:
            self.weights = [1.0] * len(self.members)
        elif isinstance(weights, Mapping):
            self.weights = [float(weights.get(m.name, 1.0)) for m in self.members]
        else:
            self.weights = [float(w) for w in weights]

    def decide(self, ctx: DecisionContext, market=None) -> Decision:
        parts = [_ask(m, ctx, market) for m in self.members]
        long_open = ctx.position is not None and getattr(ctx.position, "side", "long") == "long"
        live = [(p, w) for p, w in zip(parts, self.weights, strict=True)
                if not getattr(p.call, "skipped", "")]
        need = min(self.min_agree, len(live))
        summary = ", ".join(f"{p.provider} {p.action} {p.confidence}" for p in parts)
        votes: dict[str, list[tuple[Decision, float]]] = {s: [] for s in SIDES}
        for p, w in live:
            side = "sell" if p.action == "close" and long_open else p.action
            if side in votes and p.confidence >= self.min_confidence and w > 0:
                votes[side].append((p, w))
        weight = {s: sum(w for _, w in v) for s, v in votes.items()}
        top = max(weight.values())
        leaders = [s for s in SIDES if votes[s] and weight[s] == top]
        skipped = len(parts) - len(live)
        note = f" ({skipped} member(s) left out: LLM budget reached)" if skipped else ""
        if not live or len(leaders) != 1 or len(votes[leaders[0]]) < need:
            why = f"no {need} members agree at confidence >= {self.min_confidence} ({summary}){note}"
            return Decision("hold", 0, why, self.name, parts=parts)
        side = leaders[0]
        agree = [p for p, _ in votes[side]]
        conf = round(sum(p.confidence * w for p, w in votes[side]) / weight[side])
        why = (f"{len(agree)}/{len(live)} agree {side}{note}: "
               + "; ".join(f"{p.provider}: {p.reasoning}" for p in agree))
        return Decision(
            side, conf, why, self.name,
            inputs=next((p.inputs for p in parts if p.inputs), ""),
            stop_loss=next((p.stop_loss for p in agree if p.stop_loss is not None), None),
            take_profit=next((p.take_profit for p in agree if p.take_profit is not None), None),
            parts=parts,
        )


def _ask(member: Decider, ctx: DecisionContext, market) -> Decision:
    if market is not None and getattr(member, "wants_market", False):
        return member.decide(ctx, market)
    return member.decide(ctx)
