"""Configuration schema: the typed sections (frozen dataclasses) and the type and validation rule of every
key. Loading the TOML file and the TRADEBOT_* environment overrides is config.py's."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    leader_lease_seconds: int = 15  # PostgreSQL: a dead Telegram leader is replaced within this + ttl/6 s


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""
    lease_seconds: int = 30


@dataclass(frozen=True)
class HAConfig:
    """Several `tradebot run` workers on one PostgreSQL database (tradebot/ha/, docs/HA.md)."""

    enabled: bool = True  # PostgreSQL only; false: the single-instance lease as on SQLite
    lease_seconds: int = 20  # a dead worker's pairs move after at most this long (+ one renewal round)


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
    default_timeframe: str = "1h"
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
    max_leverage: int = 3  # futures: the operator's cap on /set leverage (and the default leverage)


@dataclass(frozen=True)
class ExchangeConfig:
    api_url: str = ""
    testnet_api_url: str = ""
    timeout_ms: int = 10000
    markets_refresh_seconds: int = 3600
    paper_data_network: str = "live"
    paper_futures_taker_fee: Decimal = Decimal("0.0005")  # paper futures: taker fee on the notional
    paper_funding_rate: Decimal = Decimal("0.0001")  # paper futures: rate booked every 8 h


@dataclass(frozen=True)
class LLMProviderConfig:
    """One `[llm.providers.<name>]` section (the plain `[llm]` section is the provider named "llm")."""

    name: str = "llm"
    protocol: str = "openai"  # openai (OpenAI, DeepSeek, local servers) | anthropic (Messages API)
    base_url: str = ""
    api_key: str = ""
    model: str = ""
    timeout_seconds: float = 20.0
    max_tokens: int = 300
    temperature: float = 0.2
    price_input_per_million: Decimal = Decimal("0")  # USD per million input tokens
    price_output_per_million: Decimal = Decimal("0")
    max_retries: int = 2

    def __repr__(self) -> str:  # never print the key
        return f"LLMProviderConfig(name={self.name!r}, protocol={self.protocol!r}, model={self.model!r}, api_key=***)"


@dataclass(frozen=True)
class LLMConfig:
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    model: str = "gpt-4o-mini"
    timeout_seconds: int = 20
    temperature: float = 0.2
    protocol: str = "openai"
    max_tokens: int = 300
    price_input_per_million: Decimal = Decimal("0")
    price_output_per_million: Decimal = Decimal("0")
    max_retries: int = 2
    # Daily caps (UTC day), 0 = none: the whole instance, and each user (charged for the calls their pairs make)
    daily_token_budget: int = 0
    daily_cost_budget: Decimal = Decimal("0")
    user_daily_token_budget: int = 0
    user_daily_cost_budget: Decimal = Decimal("0")
    # Optional context, fetched once per market and shared
    context_timeframes: list[str] = field(default_factory=list)
    order_book_levels: int = 0
    news_feeds: list[str] = field(default_factory=list)
    news_hours: int = 6
    news_refresh_minutes: int = 15
    max_prompt_chars: int = 6000
    providers: dict = field(default_factory=dict)  # name -> LLMProviderConfig (set by the loader)

    def __repr__(self) -> str:
        return f"LLMConfig(model={self.model!r}, providers={sorted(self.providers)}, api_key=***)"


@dataclass(frozen=True)
class EnsembleConfig:
    members: list[str] = field(default_factory=lambda: ["technical", "llm"])
    min_agree: int = 2
    min_confidence: int = 60
    weights: dict = field(default_factory=dict)  # member -> weight (default 1)


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
    presets: dict = field(default_factory=dict)  # name -> presets.Preset ([presets.<name>] tables)
    ha: HAConfig = field(default_factory=HAConfig)

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


SECTIONS: dict[str, tuple[type, dict[str, tuple[type, Any]]]] = {
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
            "leader_lease_seconds": (int, _range(3, 120)),
        },
    ),
    "database": (DatabaseConfig, {"url": (str, _db_url), "lease_seconds": (int, _range(3, 600))}),
    "ha": (
        HAConfig,
        {"enabled": (bool, None), "lease_seconds": (int, _range(6, 600))},
    ),
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
            "default_decider": (str, None),  # technical | llm | llm:<provider> | ensemble, checked by the loader
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
            "max_leverage": (int, _range(1, 20)),
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
            "protocol": (str, _choice("openai", "anthropic")),
            "max_tokens": (int, _range(16, 32000)),
            "price_input_per_million": (Decimal, _range(Decimal("0"), Decimal("10000"))),
            "price_output_per_million": (Decimal, _range(Decimal("0"), Decimal("10000"))),
            "max_retries": (int, _range(0, 5)),
            "daily_token_budget": (int, _range(0, 10**12)),
            "daily_cost_budget": (Decimal, _range(Decimal("0"), Decimal("1000000000"))),
            "user_daily_token_budget": (int, _range(0, 10**12)),
            "user_daily_cost_budget": (Decimal, _range(Decimal("0"), Decimal("1000000000"))),
            "context_timeframes": (list[str], lambda v: next(
                (f"{t!r} is not a timeframe ({', '.join(TIMEFRAMES)})" for t in v if t not in TIMEFRAMES), None)),
            "order_book_levels": (int, _range(0, 100)),
            "news_feeds": (list[str], lambda v: next((f"{u!r}: {_url(u)}" for u in v if _url(u) or not u), None)),
            "news_hours": (int, _range(1, 168)),
            "news_refresh_minutes": (int, _range(1, 1440)),
            "max_prompt_chars": (int, _range(1000, 100_000)),
        },
    ),
    "ensemble": (
        EnsembleConfig,
        {
            # checked against the configured providers by the loader (config.py)
            "members": (list[str], lambda v: None if v else "must list at least one decider"),
            "min_agree": (int, _range(1, 10)),
            "min_confidence": (int, _range(0, 100)),
            "weights": (dict[str, float], lambda v: next(
                (f"weight of {k!r} must be between 0 and 100" for k, w in v.items() if not 0 <= w <= 100), None)),
        },
    ),
}

# Keys of an `[llm.providers.<name>]` section.
LLM_PROVIDER_KEYS: dict[str, tuple[type, Any]] = {
    "protocol": (str, _choice("openai", "anthropic")),
    "base_url": (str, _url),
    "api_key": (str, None),
    "model": (str, None),
    "timeout_seconds": (float, _range(0.05, 300.0)),
    "max_tokens": (int, _range(16, 32000)),
    "temperature": (float, _range(0.0, 2.0)),
    "price_input_per_million": (Decimal, _range(Decimal("0"), Decimal("10000"))),
    "price_output_per_million": (Decimal, _range(Decimal("0"), Decimal("10000"))),
    "max_retries": (int, _range(0, 5)),
}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
RESERVED_DECIDER_NAMES = ("technical", "ensemble", "llm")

EXCHANGE_KEYS: dict[str, tuple[type, Any]] = {
    "api_url": (str, _url),
    "testnet_api_url": (str, _url),
    "timeout_ms": (int, _range(500, 120_000)),
    "markets_refresh_seconds": (int, _range(60, 7 * 86400)),
    "paper_data_network": (str, _choice("live", "testnet")),
    "paper_futures_taker_fee": (Decimal, _range(Decimal("0"), Decimal("0.01"))),
    "paper_funding_rate": (Decimal, _range(Decimal("-0.01"), Decimal("0.01"))),
}
