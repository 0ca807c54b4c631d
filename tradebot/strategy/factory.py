"""Build a decider by name: technical (default), llm, ensemble."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .base import Decider
from .ensemble import EnsembleDecider
from .llm import LLMDecider, LLMSettings
from .technical import TechnicalDecider

NAMES = ("technical", "llm", "ensemble")


def _get(obj: Any, key: str, default: Any) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _member(name: str, llm: LLMSettings) -> Decider:
    name = name.strip()
    kind = name.lower()
    if kind == "technical":
        return TechnicalDecider()
    if kind == "llm":
        return LLMDecider(llm)
    if kind.startswith("llm:"):  # same endpoint, another model
        return LLMDecider(replace(llm, model=name[4:]))
    raise ValueError(f"unknown ensemble member {name!r} (use technical, llm or llm:<model>)")


def build_decider(name: str = "technical", llm_settings: Any = None, ensemble_settings: Any = None) -> Decider:
    """`llm_settings`: LLMSettings, dict or object (base_url, api_key, model, timeout_seconds, ...).
    `ensemble_settings`: dict or object with members (names), min_agree, min_confidence."""
    name = (name or "technical").strip()
    kind = name.lower()
    if kind == "technical":
        return TechnicalDecider()
    llm = LLMSettings.from_any(llm_settings)
    if kind == "llm" or kind.startswith("llm:"):
        return _member(name, llm)
    if kind == "ensemble":
        members = _get(ensemble_settings, "members", None) or ["technical", "llm"]
        return EnsembleDecider(
            [_member(str(m), llm) for m in members],
            min_agree=int(_get(ensemble_settings, "min_agree", 2)),
            min_confidence=int(_get(ensemble_settings, "min_confidence", 60)),
        )
    raise ValueError(f"unknown decider {name!r} (use one of: {', '.join(NAMES)})")
