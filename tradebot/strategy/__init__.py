"""Decision engine: incremental indicators and deciders (technical, LLM, ensemble)."""

from .factory import build_decider

__all__ = ["build_decider"]
