"""The `[llm.providers.<name>]` sections and the decider names they make valid (config.py calls these).

The plain `[llm]` section stays the provider named "llm"; every other provider is a section of its own.
Environment: TRADEBOT_LLM_PROVIDERS_<NAME>_<KEY>, e.g. TRADEBOT_LLM_PROVIDERS_CLAUDE_API_KEY.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .config_schema import (
    DEFAULT_BASE_URLS,
    LLM_PROVIDER_KEYS,
    RESERVED_DECIDER_NAMES,
    ConfigError,
    LLMConfig,
    LLMProviderConfig,
)

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,30}")


def env_provider_override(var: str, rest: str) -> tuple[str, str]:
    """TRADEBOT_LLM_PROVIDERS_<NAME>_<KEY> -> ("llm_providers_<name>", key)."""
    for key in sorted(LLM_PROVIDER_KEYS, key=len, reverse=True):
        if rest.endswith("_" + key) and len(rest) > len(key) + 1:
            return (f"llm_providers_{rest[: -len(key) - 1]}", key)
    raise ConfigError(f"{var}: expected TRADEBOT_LLM_PROVIDERS_<NAME>_<KEY> with KEY one of "
                      f"{', '.join(k.upper() for k in LLM_PROVIDER_KEYS)}")


def legacy_provider(llm: LLMConfig) -> LLMProviderConfig:
    return LLMProviderConfig(
        name="llm", protocol=llm.protocol, base_url=llm.base_url, api_key=llm.api_key, model=llm.model,
        timeout_seconds=float(llm.timeout_seconds), max_tokens=llm.max_tokens, temperature=llm.temperature,
        price_input_per_million=llm.price_input_per_million, price_output_per_million=llm.price_output_per_million,
        max_retries=llm.max_retries,
    )


def load_providers(llm: LLMConfig, raw_providers, overrides: dict, build_section) -> LLMConfig:
    if raw_providers is None:
        raw_providers = {}
    if not isinstance(raw_providers, dict):
        raise ConfigError("[llm.providers]: expected tables like [llm.providers.claude]")
    env_names = {s[len("llm_providers_"):] for (s, _k) in overrides if s and s.startswith("llm_providers_")}
    providers = {"llm": legacy_provider(llm)}
    for name in sorted(set(raw_providers) | env_names):
        if not _NAME.fullmatch(name) or name in RESERVED_DECIDER_NAMES:
            raise ConfigError(f"llm.providers.{name}: a provider name is lowercase letters, digits, - or _ "
                              f"and not one of {', '.join(RESERVED_DECIDER_NAMES)}")
        env_values = {k: v for (s, k), v in overrides.items() if s == f"llm_providers_{name}"}
        section = raw_providers.get(name, {})
        p = build_section(f"llm.providers.{name}", LLMProviderConfig, LLM_PROVIDER_KEYS, section, env_values)
        if not p.model:
            raise ConfigError(f"llm.providers.{name}.model: not set (e.g. model = \"deepseek-chat\")")
        providers[name] = replace(p, name=name, base_url=p.base_url or DEFAULT_BASE_URLS[p.protocol])
    return replace(llm, providers=providers)


def usable_providers(llm) -> list[str]:
    """Providers a pair may use: every named section, and "llm" once it has an API key (as before)."""
    providers = getattr(llm, "providers", None) or {}
    names = [n for n in providers if n != "llm"]
    return (["llm"] if getattr(llm, "api_key", "") else []) + names


def decider_problem(name: str, llm) -> str | None:
    """Why `name` is not a decider this configuration can run (None if it is)."""
    kind = name.strip().lower()
    if kind in ("technical", "ensemble"):
        return None
    provider = kind[4:] if kind.startswith("llm:") else kind
    providers = getattr(llm, "providers", None) or {}
    if provider in providers:
        return None
    if kind.startswith("llm:") and provider and "llm" in providers:
        return None  # llm:<model>: the [llm] endpoint with another model (kept from earlier releases)
    return f"unknown decider {name!r} (use technical, ensemble, llm or llm:<provider>; providers: " \
           f"{', '.join(sorted(providers)) or 'none'})"


def check_deciders(llm: LLMConfig, ensemble, trading) -> None:
    problem = decider_problem(trading.default_decider, llm)
    if problem:
        raise ConfigError(f"trading.default_decider: {problem}")
    for m in ensemble.members:
        if m.strip().lower() == "ensemble":
            raise ConfigError("ensemble.members: an ensemble cannot contain itself")
        problem = decider_problem(m, llm)
        if problem:
            raise ConfigError(f"ensemble.members: {problem}")
    for k in ensemble.weights:
        if k not in ensemble.members:
            raise ConfigError(f"ensemble.weights: {k!r} is not one of ensemble.members ({', '.join(ensemble.members)})")
