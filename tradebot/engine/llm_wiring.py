"""How the cycle asks a decider that wants more than the DecisionContext (LLM members, ensembles): the
market it trades on, the optional shared context sections and the pair's budget gate (llm_ledger.py)."""

from __future__ import annotations


def market_type(cfg) -> str:
    """"futures" for a perpetual-futures pair (the futures branch adds the column), else "spot"."""
    value = getattr(cfg, "market_type", None) or getattr(cfg, "market", None) or "spot"
    return "futures" if str(value).lower() in ("futures", "swap", "linear", "perp", "perpetual") else "spot"


class LLMWiring:
    """Part of CycleRunner. `llm_ledger` (LLMLedger) and `llm_context` (LLMContext) may be None."""

    llm_ledger = None
    llm_context = None

    def decide(self, decider, ctx, cfg, data_net: str):
        if not getattr(decider, "wants_market", False):
            return decider.decide(ctx)
        from ..strategy.llm_prompt import MarketInfo

        kind = market_type(cfg)
        sections = ()
        if self.llm_context is not None:
            sections = self.llm_context.sections(cfg.exchange, data_net, cfg.symbol, cfg.timeframe, kind,
                                                 ctx.candles[-1].ts if ctx.candles else 0)
        gate = self.llm_ledger.gate(cfg) if self.llm_ledger is not None else None
        return decider.decide(ctx, MarketInfo(cfg.exchange, kind, sections, gate))
