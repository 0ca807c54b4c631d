"""Build a decider by name: technical (default), llm, ensemble; `name@preset` gives the technical decider (also
inside an ensemble) the parameters of a config preset."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from .base import Decider
from .ensemble import EnsembleDecider
from .llm import LLMDecider, LLMSettings
from .technical import TechnicalDecider, TechnicalParams

NAMES = ("technical", "llm", "ensemble")
log = logging.getLogger(__name__)


def _get(obj: Any, key: str, default: Any) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _member(name: str, llm: LLMSettings, technical: TechnicalParams | None = None) -> Decider:
    name = name.strip()
    kind = name.lower()
    if kind == "technical":
        return TechnicalDecider(technical)
    if kind == "llm":
        return LLMDecider(llm)
    if kind.startswith("llm:"):  # same endpoint, another model
        return LLMDecider(replace(llm, model=name[4:]))
    raise ValueError(f"unknown ensemble member {name!r} (use technical, llm or llm:<model>)")


def build_decider(name: str = "technical", llm_settings: Any = None, ensemble_settings: Any = None,
                  presets: dict | None = None) -> Decider:
    """`presets`: name -> presets.Preset (Config.presets).
    `llm_settings`: LLMSettings, dict or object (base_url, api_key, model, timeout_seconds, ...).
    `ensemble_settings`: dict or object with members (names), min_agree, min_confidence."""
    name, _, preset = (name or "technical").strip().partition("@")
    technical = None
    if preset:
        found = (presets or {}).get(preset)
        if found is None:  # removed from the config since it was applied: the defaults, said once per build
            log.warning("preset %r is not in the config any more: the technical decider uses its defaults", preset)
        else:
            technical = found.technical
    kind = name.lower()
    if kind == "technical":
        return TechnicalDecider(technical)
    llm = LLMSettings.from_any(llm_settings)
    if kind == "llm" or kind.startswith("llm:"):
        return _member(name, llm)
    if kind == "ensemble":
        members = _get(ensemble_settings, "members", None) or ["technical", "llm"]
        return EnsembleDecider(
            [_member(str(m), llm, technical) for m in members],
            min_agree=int(_get(ensemble_settings, "min_agree", 2)),
            min_confidence=int(_get(ensemble_settings, "min_confidence", 60)),
        )
    raise ValueError(f"unknown decider {name!r} (use one of: {', '.join(NAMES)})")
