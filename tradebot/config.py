"""Configuration: a TOML file plus TRADEBOT_* environment overrides, validated once
(the sections and their rules are in config_schema.py).

Every problem becomes ONE `ConfigError` line naming the key; the CLI prints it and exits 2.
"""

from __future__ import annotations

import math
import os
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .ascii_digits import ascii_int
from .config_schema import (
    DEFAULT_CONFIG_NAME,
    EXCHANGE_KEYS,
    EXCHANGES,
    SECTIONS,
    Config,
    ConfigError,
    ExchangeConfig,
)

__all__ = ["Config", "ConfigError", "default_config_path", "default_data_dir", "load_config",
           "require_telegram_token", "token_problem"]

# Environment variables with a name that is not simply TRADEBOT_<SECTION>_<KEY>.
_ENV_ALIASES = {
    "TRADEBOT_TELEGRAM_TOKEN": ("telegram", "token"),
    "TRADEBOT_DATABASE_URL": ("database", "url"),
    "TRADEBOT_DATA_DIR": (None, "data_dir"),
    "TRADEBOT_ADMIN_IDS": ("telegram", "admin_ids"),
    "TRADEBOT_LLM_API_KEY": ("llm", "api_key"),
}


MAX_DECIMAL_EXPONENT = 15  # config numbers lie between 1e-15 and 1e15 (or are 0)


def _ascii_int(text: str) -> int:
    """int() also reads '١٢' and fails with ValueError on '²': accept ASCII digits only."""
    value = ascii_int(text.strip(), signed=True, max_digits=30)  # the range checks judge the size
    if value is None:
        raise ValueError(text)
    return value


def _ascii_number(text: str) -> str:
    text = text.strip()
    if not text.isascii():
        raise ValueError(text)
    return text


def _coerce(key: str, kind, value, from_env: bool):
    """Convert `value` to `kind`; raise ConfigError naming `key`."""
    type_name = getattr(kind, "__name__", str(kind))
    try:
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind is bool:
            if from_env and isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if from_env and isinstance(value, str):
                value = _ascii_int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if kind is float:
            if from_env and isinstance(value, str):
                value = float(_ascii_number(value))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            if not math.isfinite(value):  # nan passes every range check (all comparisons are false)
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
            return float(value)
        if kind is Decimal:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise TypeError
            dec = Decimal(_ascii_number(str(value)))
            # finite and of a sane size: '1e999999999' is finite but takes seconds and a gigabyte to format
            if not dec.is_finite() or (dec and abs(dec.adjusted()) > MAX_DECIMAL_EXPONENT):
                raise ConfigError(f"{key}: must be a finite number between 1e-{MAX_DECIMAL_EXPONENT} and "
                                  f"1e{MAX_DECIMAL_EXPONENT}, got {str(value)[:40]!r}")
            return dec
        if kind in (list[int], list[str]):
            inner = int if kind == list[int] else str
            if from_env and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
                if inner is int:
                    value = [_ascii_int(v) for v in value]
            if not isinstance(value, list) or not all(
                isinstance(v, inner) and not isinstance(v, bool) for v in value
            ):
                raise TypeError
            return list(value)
    except (TypeError, ValueError, InvalidOperation):
        pass
    if kind in (list[int], list[str]):
        type_name = "list of integers" if kind == list[int] else "list of strings"
    shown = value if len(repr(value)) < 60 else repr(value)[:57] + "..."
    raise ConfigError(f"{key}: expected {type_name}, got {shown!r}")


def _build_section(name: str, cls, rules: dict, raw: dict, env_values: dict) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}]: expected a table, got {type(raw).__name__}")
    for key in raw:
        if key not in rules:
            raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(rules)})")
    values = {}
    for key, (kind, check) in rules.items():
        full = f"{name}.{key}"
        if key in env_values:
            value = _coerce(full, kind, env_values[key], from_env=True)
        elif key in raw:
            value = _coerce(full, kind, raw[key], from_env=False)
        else:
            continue
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{full}: {problem} (got {value})")
        values[key] = value
    return cls(**values)


def _env_overrides(env) -> dict[tuple[str | None, str], str]:
    out: dict[tuple[str | None, str], str] = {}
    for name, value in env.items():
        if not name.startswith("TRADEBOT_") or name in ("TRADEBOT_CONFIG", "TRADEBOT_SECRET_KEY"):
            continue
        if name in _ENV_ALIASES:
            out[_ENV_ALIASES[name]] = value
            continue
        rest = name[len("TRADEBOT_"):].lower()
        if rest.startswith("exchanges_"):
            exchange = next((e for e in EXCHANGES if rest.startswith(f"exchanges_{e}_")), None)
            if exchange is None:
                raise ConfigError(f"{name}: unknown exchange (supported: {', '.join(EXCHANGES)}; "
                                  f"use TRADEBOT_EXCHANGES_<EXCHANGE>_<KEY>)")
            key = rest[len(f"exchanges_{exchange}_"):]
            if key not in EXCHANGE_KEYS:
                raise ConfigError(f"{name}: unknown setting exchanges.{exchange}.{key} "
                                  f"(known: {', '.join(EXCHANGE_KEYS)})")
            out[(f"exchanges_{exchange}", key)] = value
            continue
        for section in SECTIONS:
            if rest.startswith(section + "_"):
                out[(section, rest[len(section) + 1:])] = value
                break
    return out


def default_config_path(env=os.environ) -> Path:
    if env.get("TRADEBOT_CONFIG"):
        return Path(env["TRADEBOT_CONFIG"]).expanduser()
    if env.get("TRADEBOT_DATA_DIR"):
        return Path(env["TRADEBOT_DATA_DIR"]).expanduser() / DEFAULT_CONFIG_NAME
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "tradebot" / DEFAULT_CONFIG_NAME


def default_data_dir(env=os.environ) -> Path:
    base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tradebot"


def load_config(path: str | Path | None = None, env=None, *, must_exist: bool = False) -> Config:
    """Read `path` (or the default location) and apply environment overrides.

    A missing default file is fine (defaults + environment, e.g. in a container);
    an explicitly named file that is missing or unreadable is an error."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("TRADEBOT_CONFIG"))
    cfg_path = Path(path).expanduser() if path is not None else default_config_path(env)
    raw: dict = {}
    if cfg_path.exists() or explicit or must_exist:
        try:
            with open(cfg_path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {cfg_path}: not found (create one with `tradebot init`)") from None
        except PermissionError:
            raise ConfigError(f"config file {cfg_path}: not readable (permission denied)") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {cfg_path}: is a directory") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {cfg_path}: invalid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {cfg_path}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"config file {cfg_path}: cannot read: {exc.strerror}") from None
    else:
        cfg_path = None

    overrides = _env_overrides(env)
    known_top = set(SECTIONS) | {"data_dir", "exchanges", "presets"}
    for key in raw:
        if key not in known_top:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(known_top))})")

    data_dir_value = overrides.get((None, "data_dir"), raw.get("data_dir"))
    if data_dir_value is None:
        data_dir = default_data_dir(env)
    else:
        data_dir = Path(_coerce("data_dir", str, data_dir_value, from_env=True)).expanduser()

    sections = {}
    for name, (cls, rules) in SECTIONS.items():
        env_values = {k: v for (s, k), v in overrides.items() if s == name}
        for (s, k) in overrides:
            if s == name and k not in rules:
                raise ConfigError(f"TRADEBOT_{name.upper()}_{k.upper()}: unknown setting {name}.{k}")
        sections[name] = _build_section(name, cls, rules, raw.get(name, {}), env_values)

    raw_ex = raw.get("exchanges", {})
    if not isinstance(raw_ex, dict):
        raise ConfigError("[exchanges]: expected a table of exchanges")
    for name in raw_ex:
        if name not in EXCHANGES:
            raise ConfigError(f"exchanges.{name}: unknown exchange (supported: {', '.join(EXCHANGES)})")
    exchanges = {}
    for name in EXCHANGES:
        env_values = {k: v for (s, k), v in overrides.items() if s == f"exchanges_{name}"}
        exchanges[name] = _build_section(
            f"exchanges.{name}", ExchangeConfig, EXCHANGE_KEYS, raw_ex.get(name, {}), env_values
        )

    ensemble = sections["ensemble"]
    if ensemble.min_agree > len(ensemble.members):
        raise ConfigError(
            f"ensemble.min_agree: must not exceed the number of ensemble.members "
            f"({ensemble.min_agree} > {len(ensemble.members)}): the ensemble could never agree"
        )
    trading = sections["trading"]
    if trading.min_budget > trading.max_budget:
        raise ConfigError(
            f"trading.min_budget: must not exceed trading.max_budget ({trading.min_budget} > {trading.max_budget})"
        )
    from .presets import PresetError, parse_presets

    try:
        presets = parse_presets(raw.get("presets"))
    except PresetError as exc:
        raise ConfigError(str(exc)) from None
    return Config(data_dir=data_dir, exchanges=exchanges, path=cfg_path, presets=presets, **sections)


def token_problem(token: str) -> str | None:
    """Why `token` cannot be a bot token (None if it can). One rule for `run` and `init`."""
    head, _, tail = token.strip().partition(":")
    if not (head.isascii() and head.isdigit()) or not tail:
        return "does not look like a bot token (expected 123456:ABC...)"
    return None


def require_telegram_token(cfg: Config) -> str:
    token = cfg.telegram.token.strip()
    where = cfg.path or default_config_path()
    if not token:
        raise ConfigError(
            "telegram.token: not set. Create a bot with @BotFather in Telegram (/newbot), then put the token "
            f"in {where} under [telegram] token = \"...\" or set TRADEBOT_TELEGRAM_TOKEN"
        )
    problem = token_problem(token)
    if problem:
        raise ConfigError(f"telegram.token: {problem}")
    return token
