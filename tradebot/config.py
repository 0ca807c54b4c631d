"""Configuration: a TOML file plus TRADEBOT_* environment overrides, validated once.

Every problem becomes ONE `ConfigError` line naming the key; the CLI prints it and exits 2.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .ascii_digits import ascii_int
from .db import DatabaseURLError, parse_url

DEFAULT_CONFIG_NAME = "config.toml"


class ConfigError(Exception):
    """One line: which key, what is wrong."""


# ---------------------------------------------------------------- typed sections


@dataclass(frozen=True)
class TelegramConfig:
    token: str = ""
    api_url: str = "https://api.telegram.org"
    admin_ids: list[int] = field(default_factory=list)
    access: str = "open"
    allowlist: list[int] = field(default_factory=list)
    workers: int = 32
    rate_limit_per_minute: int = 30
    poll_timeout: int = 20


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""
    lease_seconds: int = 30


@dataclass(frozen=True)
class SecurityConfig:
    key_file: str = ""


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    file: str = ""
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5


@dataclass(frozen=True)
class TradingConfig:
    default_interval_seconds: int = 60
    default_timeframe: str = "1m"
    default_decider: str = "technical"
    max_pairs_per_user: int = 20
    min_budget: Decimal = Decimal("10")
    max_budget: Decimal = Decimal("1000000")
    scheduler_workers: int = 16
    shutdown_timeout_seconds: int = 2
    record_hold_decisions: str = "all"
    decision_retention_days: int = 30


@dataclass(frozen=True)
class RiskConfig:
    max_position_percent: Decimal = Decimal("30")
    stop_loss_percent: Decimal = Decimal("2")
    take_profit_percent: Decimal = Decimal("5")
    max_consecutive_losses: int = 5
    daily_loss_limit_percent: Decimal = Decimal("5")
    max_drawdown_percent: Decimal = Decimal("15")
    cooldown_minutes: int = 60


@dataclass(frozen=True)
class ExchangeConfig:
    api_url: str = ""
    testnet_api_url: str = ""
    timeout_ms: int = 10000
    markets_refresh_seconds: int = 3600
    paper_data_network: str = "live"


@dataclass(frozen=True)
class LLMConfig:
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    model: str = "gpt-4o-mini"
    timeout_seconds: int = 20
    temperature: float = 0.2


@dataclass(frozen=True)
class EnsembleConfig:
    members: list[str] = field(default_factory=lambda: ["technical", "llm"])
    min_agree: int = 2
    min_confidence: int = 60


EXCHANGES = ("binance", "bybit")


@dataclass(frozen=True)
class Config:
    data_dir: Path
    telegram: TelegramConfig
    database: DatabaseConfig
    security: SecurityConfig
    logging: LoggingConfig
    trading: TradingConfig
    risk: RiskConfig
    exchanges: dict[str, ExchangeConfig]
    llm: LLMConfig
    ensemble: EnsembleConfig
    path: Path | None = None  # the file it was read from, if any

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'tradebot.db'}"

    @property
    def key_file(self) -> Path:
        return Path(self.security.key_file).expanduser() if self.security.key_file else self.data_dir / "secret.key"

    @property
    def log_file(self) -> Path:
        return Path(self.logging.file).expanduser() if self.logging.file else self.data_dir / "logs" / "bot.log"


# ---------------------------------------------------------------- validation rules
# (type, check) per key; check returns an error text or None.


def _range(lo=None, hi=None):
    def check(v):
        if lo is not None and v < lo:
            return f"must be >= {lo}"
        if hi is not None and v > hi:
            return f"must be <= {hi}"
        return None

    return check


def _choice(*options):
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _telegram_ids(v):
    bad = [i for i in v if not 0 < i < 2**63]
    return f"Telegram user ids are positive numbers ({bad[0]} is not one)" if bad else None


def _url(v):
    if v == "":
        return None
    if not v.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError on a port outside 0..65535
    except ValueError:
        return "is not a valid URL"
    if not parts.hostname or any(ch.isspace() for ch in v):
        return "is not a valid URL (needs a host name, no spaces)"
    return None


# The timeframes a pair can use (`/set <symbol> timeframe`, services.TEXT_SETTINGS): both exchanges serve them.
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


def _timeframe(v):
    return None if v in TIMEFRAMES else f"must be one of {', '.join(TIMEFRAMES)}"


def _db_url(v):
    if v == "":
        return None
    try:
        parse_url(v)
    except DatabaseURLError as exc:
        return str(exc)
    return None


_SECTIONS: dict[str, tuple[type, dict[str, tuple[type, Any]]]] = {
    "telegram": (
        TelegramConfig,
        {
            "token": (str, None),
            "api_url": (str, _url),
            "admin_ids": (list[int], _telegram_ids),
            "access": (str, _choice("open", "approval", "allowlist")),
            "allowlist": (list[int], _telegram_ids),
            "workers": (int, _range(1, 64)),
            "rate_limit_per_minute": (int, _range(1, 10000)),
            "poll_timeout": (int, _range(1, 60)),
        },
    ),
    "database": (DatabaseConfig, {"url": (str, _db_url), "lease_seconds": (int, _range(3, 600))}),
    "security": (SecurityConfig, {"key_file": (str, None)}),
    "logging": (
        LoggingConfig,
        {
            "level": (str, _choice("DEBUG", "INFO", "WARNING", "ERROR")),
            "file": (str, None),
            "max_bytes": (int, _range(10_000, 10 << 30)),
            "backups": (int, _range(0, 100)),
        },
    ),
    "trading": (
        TradingConfig,
        {
            "default_interval_seconds": (int, _range(5, 86400)),
            "default_timeframe": (str, _timeframe),
            "default_decider": (str, _choice("technical", "llm", "ensemble")),
            "max_pairs_per_user": (int, _range(1, 1000)),
            "min_budget": (Decimal, _range(Decimal("0.01"), Decimal("1000000000000"))),
            "max_budget": (Decimal, _range(Decimal("1"), Decimal("1000000000000"))),
            "scheduler_workers": (int, _range(1, 256)),
            "shutdown_timeout_seconds": (int, _range(1, 600)),
            "record_hold_decisions": (str, _choice("all", "nontechnical", "none")),
            "decision_retention_days": (int, _range(1, 36500)),
        },
    ),
    "risk": (
        RiskConfig,
        {
            "max_position_percent": (Decimal, _range(Decimal("1"), Decimal("100"))),
            "stop_loss_percent": (Decimal, _range(Decimal("0.1"), Decimal("50"))),
            "take_profit_percent": (Decimal, _range(Decimal("0.1"), Decimal("500"))),
            "max_consecutive_losses": (int, _range(1, 100)),
            "daily_loss_limit_percent": (Decimal, _range(Decimal("0.1"), Decimal("100"))),
            "max_drawdown_percent": (Decimal, _range(Decimal("0.1"), Decimal("100"))),
            "cooldown_minutes": (int, _range(1, 7 * 24 * 60)),
        },
    ),
    "llm": (
        LLMConfig,
        {
            "base_url": (str, _url),
            "api_key": (str, None),
            "model": (str, None),
            "timeout_seconds": (int, _range(1, 300)),
            "temperature": (float, _range(0.0, 2.0)),
        },
    ),
    "ensemble": (
        EnsembleConfig,
        {
            "members": (list[str], lambda v: None if v and set(v) <= {"technical", "llm"} else
                        "must list deciders from: technical, llm"),
            "min_agree": (int, _range(1, 10)),
            "min_confidence": (int, _range(0, 100)),
        },
    ),
}

_EXCHANGE_KEYS: dict[str, tuple[type, Any]] = {
    "api_url": (str, _url),
    "testnet_api_url": (str, _url),
    "timeout_ms": (int, _range(500, 120_000)),
    "markets_refresh_seconds": (int, _range(60, 7 * 86400)),
    "paper_data_network": (str, _choice("live", "testnet")),
}

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
            if key not in _EXCHANGE_KEYS:
                raise ConfigError(f"{name}: unknown setting exchanges.{exchange}.{key} "
                                  f"(known: {', '.join(_EXCHANGE_KEYS)})")
            out[(f"exchanges_{exchange}", key)] = value
            continue
        for section in _SECTIONS:
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
    known_top = set(_SECTIONS) | {"data_dir", "exchanges"}
    for key in raw:
        if key not in known_top:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(known_top))})")

    data_dir_value = overrides.get((None, "data_dir"), raw.get("data_dir"))
    if data_dir_value is None:
        data_dir = default_data_dir(env)
    else:
        data_dir = Path(_coerce("data_dir", str, data_dir_value, from_env=True)).expanduser()

    sections = {}
    for name, (cls, rules) in _SECTIONS.items():
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
            f"exchanges.{name}", ExchangeConfig, _EXCHANGE_KEYS, raw_ex.get(name, {}), env_values
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
    return Config(data_dir=data_dir, exchanges=exchanges, path=cfg_path, **sections)


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
