"""Ensemble: act only when enough members agree with enough confidence."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Decider, Decision, DecisionContext


class EnsembleDecider:
    name = "ensemble"

    def __init__(self, members: Sequence[Decider], min_agree: int = 2, min_confidence: int = 60):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if not 1 <= min_agree <= len(members):
            raise ValueError(f"min_agree must be between 1 and {len(members)}")
        self.members = list(members)
        self.min_agree = min_agree
        self.min_confidence = min_confidence

    def decide(self, ctx: DecisionContext) -> Decision:
        parts = [m.decide(ctx) for m in self.members]
        votes = {
            side: [p for p in parts if p.action == side and p.confidence >= self.min_confidence]
            for side in ("buy", "sell")
        }
        buy, sell = votes["buy"], votes["sell"]
        # The larger qualifying camp wins; a tie (only possible with 4+ members) holds.
        side = "buy" if len(buy) > len(sell) else "sell" if len(sell) > len(buy) else None
        summary = ", ".join(f"{p.provider} {p.action} {p.confidence}" for p in parts)
        if side is None or len(votes[side]) < self.min_agree:
            why = f"no {self.min_agree} members agree at confidence >= {self.min_confidence} ({summary})"
            return Decision("hold", 0, why, self.name, parts=parts)
        agree = votes[side]
        conf = round(sum(p.confidence for p in agree) / len(agree))
        why = f"{len(agree)}/{len(parts)} agree {side}: " + "; ".join(f"{p.provider}: {p.reasoning}" for p in agree)
        return Decision(
            side, conf, why, self.name,
            inputs=next((p.inputs for p in parts if p.inputs), ""),
            stop_loss=next((p.stop_loss for p in agree if p.stop_loss is not None), None),
            take_profit=next((p.take_profit for p in agree if p.take_profit is not None), None),
            parts=parts,
        )
