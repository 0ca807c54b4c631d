"""Errors the user reads (ServiceError and kin) and the plain-data views the chat and CLI format."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..models import User
from .common import HUNDRED

# ---------------------------------------------------------------- errors


class ServiceError(Exception):
    """A refusal the user should read. `str(exc)` is plain text without secrets."""


class NotRegistered(ServiceError):
    pass


class PendingApproval(ServiceError):
    def __init__(self, message: str, new_user: bool = False):
        super().__init__(message)
        self.new_user = new_user  # registered just now: the admins are to be asked


class Blocked(ServiceError):
    pass


class AccessDenied(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class Ambiguous(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class InvalidValue(ServiceError):
    pass


class NotConnected(ServiceError):
    pass


class ExchangeRefused(ServiceError):
    """The exchange layer refused (bad keys, unknown symbol, exchange down...)."""


# ---------------------------------------------------------------- views (plain data for formatting)


@dataclass(frozen=True)
class PairView:
    config_id: int
    symbol: str
    exchange: str
    network: str
    budget: Decimal
    is_trading: bool
    status: str  # running | stopped | paused | error
    equity: Decimal
    pnl: Decimal
    pnl_percent: Decimal
    breaker_until: dt.datetime | None = None
    breaker_reason: str | None = None
    last_error: str | None = None
    # futures pairs (spot: market_type "spot", the rest unused)
    market_type: str = "spot"
    leverage: int = 1
    margin_mode: str = "isolated"
    direction: str = "both"
    side: str = "flat"  # long | short | flat
    funding_paid: Decimal = Decimal(0)  # + paid, - received


@dataclass(frozen=True)
class StartResult:
    started: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class StopResult:
    stopped: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectResult:
    exchange: str
    network: str
    api_key_masked: str | None
    replaced: bool


@dataclass(frozen=True)
class CredentialView:
    exchange: str
    network: str
    api_key_masked: str | None


@dataclass(frozen=True)
class PairConfigView:
    pair: PairView
    settings: dict[str, Any]


@dataclass(frozen=True)
class ConfigView:
    credentials: list[CredentialView]
    pairs: list[PairConfigView]
    notify: bool


@dataclass(frozen=True)
class TradeStats:
    label: str  # "BTC/USDT (binance)" or "Total"
    fills: int
    closed: int
    wins: int
    losses: int
    realized_pnl: Decimal
    best: Decimal | None
    worst: Decimal | None
    fees: Decimal
    funding: Decimal | None = None  # futures: funding paid (+) / received (-), inside realized_pnl

    @property
    def win_rate(self) -> Decimal | None:
        if not self.closed:
            return None
        return (Decimal(self.wins) * HUNDRED / Decimal(self.closed)).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class StatsView:
    pairs: list[TradeStats]
    total: TradeStats


@dataclass(frozen=True)
class PositionView:
    symbol: str
    exchange: str
    amount: Decimal
    entry_price: Decimal
    last_price: Decimal | None
    cost_basis: Decimal
    unrealized_pnl: Decimal | None
    unrealized_percent: Decimal | None
    stop_loss_price: Decimal | None
    take_profit_price: Decimal | None
    opened_at: dt.datetime
    # futures positions
    side: str = "long"
    market_type: str = "spot"
    leverage: int = 1
    margin: Decimal | None = None
    liquidation_price: Decimal | None = None
    funding: Decimal | None = None  # + paid, - received


@dataclass(frozen=True)
class UserView:
    telegram_id: int
    username: str | None
    first_name: str | None
    status: str
    is_admin: bool
    pairs: int
    trading: int


@dataclass(frozen=True)
class RegisterResult:
    user: User
    created: bool
    status: str  # active | pending | blocked | refused


@dataclass(frozen=True)
class SettingChange:
    symbol: str
    exchange: str
    setting: str
    old: Any
    new: Any
