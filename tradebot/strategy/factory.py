"""Build a decider by name: technical (default), llm (the [llm] section), llm:<provider>, ensemble;
`name@preset` gives the technical decider (also inside an ensemble) the parameters of a config preset.

Every LLM decider built by one factory shares one SharedAnswers, so the ensemble's members and the pairs
that use a provider alone share their calls."""

from __future__ import annotations

import logging
from typing import Any

from .base import Decider
from .ensemble import EnsembleDecider
from .llm import LLMDecider
from .llm_client import ProviderSettings
from .llm_shared import SharedAnswers
from .technical import TechnicalDecider, TechnicalParams

NAMES = ("technical", "llm", "llm:<provider>", "ensemble")
log = logging.getLogger(__name__)


def _get(obj: Any, key: str, default: Any) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class DeciderFactory:
    def __init__(self, llm_settings: Any = None, ensemble_settings: Any = None,
                 answers: SharedAnswers | None = None, cache=None, presets: dict | None = None):
        self.presets = presets or {}  # name -> presets.Preset (Config.presets)
        self.llm = llm_settings
        self.ensemble = ensemble_settings
        self.answers = answers if answers is not None else SharedAnswers()
        self.cache = cache
        providers = _get(llm_settings, "providers", None) or {}
        self.providers = {str(k).lower(): v for k, v in providers.items()}
        self.max_prompt_chars = int(_get(llm_settings, "max_prompt_chars", 6000) or 6000)

    def _llm(self, settings, label: str | None) -> LLMDecider:
        return LLMDecider(settings, self.answers, label, self.max_prompt_chars, self.cache)

    def member(self, name: str, technical: TechnicalParams | None = None) -> Decider:
        name = name.strip()
        kind = name.lower()
        if kind == "technical":
            return TechnicalDecider(technical)
        if kind == "llm":
            return self._llm(self._legacy(), None)
        provider = kind[4:] if kind.startswith("llm:") else kind
        if provider in self.providers and provider != "llm":
            return self._llm(ProviderSettings.from_any(self.providers[provider], name=provider), f"llm:{provider}")
        if kind.startswith("llm:") and name[4:]:  # the [llm] endpoint with another model (earlier releases)
            return self._llm(ProviderSettings.from_any(self._legacy(), model=name[4:]), None)
        known = ", ".join(["technical", "llm", *sorted(p for p in self.providers if p != "llm")])
        raise ValueError(f"unknown decider {name!r} (use one of: {known}, ensemble)")

    def _legacy(self) -> ProviderSettings:
        has_own = _get(self.llm, "model", None) is not None or _get(self.llm, "base_url", None) is not None
        base = self.llm if has_own or "llm" not in self.providers else self.providers["llm"]
        return ProviderSettings.from_any(base, name="llm")

    def _technical(self, preset: str) -> TechnicalParams | None:
        if not preset:
            return None
        found = self.presets.get(preset)
        if found is None:  # removed from the config since it was applied: the defaults, said once per build
            log.warning("preset %r is not in the config any more: the technical decider uses its defaults", preset)
            return None
        return found.technical

    def build(self, name: str = "technical") -> Decider:
        name, _, preset = (name or "technical").strip().partition("@")
        technical = self._technical(preset)
        if name.lower() != "ensemble":
            return self.member(name, technical)
        ens = self.ensemble
        members = _get(ens, "members", None) or ["technical", "llm"]
        return EnsembleDecider(
            [self.member(str(m), technical) for m in members],
            min_agree=int(_get(ens, "min_agree", 2)),
            min_confidence=int(_get(ens, "min_confidence", 60)),
            weights=[float((_get(ens, "weights", None) or {}).get(str(m), 1.0)) for m in members],
        )


def build_decider(name: str = "technical", llm_settings: Any = None, ensemble_settings: Any = None,
                  answers: SharedAnswers | None = None, cache=None, presets: dict | None = None) -> Decider:
    """`llm_settings`: the [llm] config (LLMConfig with .providers), ProviderSettings, dict or object.
    `ensemble_settings`: dict or object with members, min_agree, min_confidence, weights.
    `presets`: name -> presets.Preset (Config.presets)."""
    return DeciderFactory(llm_settings, ensemble_settings, answers, cache, presets).build(name)
