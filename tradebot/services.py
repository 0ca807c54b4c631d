"""Use cases shared by the Telegram chat and the CLI. Authorization lives here.

Rules:
- Every function that touches a pair takes the acting `User` and only ever looks at that user's rows, so no
  command of one user can see or change another user's pairs (ids in callback data are checked too).
- Errors the user should see are `ServiceError` subclasses whose `str()` is a short plain-text message with
  no secrets in it; the chat layer escapes and formats it.
- No telebot, no click: callers translate chat / command-line input into these calls.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import peewee as pw

from . import events
from .ascii_digits import ascii_int
from .db import write_tx
from .models import ExchangeCredential, Position, Trade, User, UserConfig, UserState, utcnow

log = logging.getLogger("tradebot.services")
actions = logging.getLogger("tradebot.actions")


def _action(user: User, what: str, **fields) -> None:
    """One INFO line per user action, for the operator: who, what, on which pair. Never a secret."""
    who = f"{user.telegram_id}" + (f" (@{user.username})" if getattr(user, "username", None) else "")
    detail = " ".join(f"{k}={_field(v)}" for k, v in fields.items() if v is not None and v != [])
    actions.info("user %s %s%s", who, what, f": {detail}" if detail else "")


def _field(value) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)

EXCHANGES = ("binance", "bybit")

ZERO = Decimal("0")
HUNDRED = Decimal("100")


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


# ---------------------------------------------------------------- settings /set can change

# name -> (model field, kind, lo, hi, description). kind: "percent" | "int"
SETTINGS: dict[str, tuple[str, str, Decimal, Decimal, str]] = {
    "stop_loss": ("stop_loss_percent", "percent", Decimal("0.1"), Decimal("50"), "stop-loss, % below entry"),
    "take_profit": (
        "take_profit_percent",
        "percent",
        Decimal("0.1"),
        Decimal("500"),
        "take-profit, % above entry",
    ),
    "max_position": (
        "max_position_percent",
        "percent",
        Decimal("1"),
        Decimal("100"),
        "max position, % of equity",
    ),
    "max_losses": (
        "max_consecutive_losses",
        "int",
        Decimal("1"),
        Decimal("100"),
        "losses in a row before pausing",
    ),
    "daily_loss": (
        "daily_loss_limit_percent",
        "percent",
        Decimal("0.5"),
        Decimal("100"),
        "daily loss limit, %",
    ),
    "max_drawdown": ("max_drawdown_percent", "percent", Decimal("1"), Decimal("100"), "max drawdown, %"),
    "cooldown": (
        "cooldown_minutes",
        "int",
        Decimal("0"),
        Decimal("10080"),
        "pause after a breaker trip, minutes",
    ),
    "min_confidence": ("min_confidence", "int", Decimal("0"), Decimal("100"), "minimum signal confidence"),
}
# Settings whose value is a word: name -> (model field, allowed values, description).
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
TEXT_SETTINGS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "timeframe": ("timeframe", TIMEFRAMES, "candle timeframe the decider reads"),
    "decider": ("decider", ("technical", "llm", "ensemble"), "who decides: technical, llm or ensemble"),
}
SETTING_ALIASES = {
    "sl": "stop_loss",
    "stoploss": "stop_loss",
    "tp": "take_profit",
    "takeprofit": "take_profit",
    "position": "max_position",
    "max_position_percent": "max_position",
    "losses": "max_losses",
    "max_consecutive_losses": "max_losses",
    "daily_loss_limit": "daily_loss",
    "drawdown": "max_drawdown",
    "confidence": "min_confidence",
    "stop_loss_percent": "stop_loss",
    "take_profit_percent": "take_profit",
}


def symbol_key(text: str) -> str:
    """Separator- and case-insensitive form of a symbol: 'btc-usdt' and 'BTC/USDT' both give 'BTCUSDT'."""
    return re.sub(r"[^A-Z0-9]", "", (text or "").upper())


def _mask(value: str | None) -> str | None:
    if not value:
        return None
    try:
        from .vault import mask

        return mask(value)
    except ImportError:  # pragma: no cover
        return f"{value[:4]}…{value[-4:]}" if len(value) > 10 else "…"


def _asked_now_message(exc: BaseException) -> str | None:
    """The exchange layer's text for an error in a request the user is waiting for. An outage says "will
    retry" (true for the engine's cycles): here nothing retries, the user has to send the command again."""
    message = getattr(exc, "user_message", None)
    if message is None:
        return None
    try:
        from .exchange.errors import ExchangeUnavailable
    except ImportError:  # pragma: no cover
        return message
    if isinstance(exc, ExchangeUnavailable):
        message = re.sub(r"[;.]\s*will retry\.?$", ".", message.strip())
        message += " Try again in a minute."
    return message


def _register_secrets(*values: str | None) -> None:
    try:
        from .logging_setup import register_secret
    except ImportError:  # pragma: no cover
        return
    for value in values:
        register_secret(value)


# ---------------------------------------------------------------- users (also used by the CLI)


def find_user(ref: int | str) -> User | None:
    """A user by Telegram id (int or digits) or username (with or without @). A username several users
    carry (a stale one: names are refreshed on every message) is refused with their ids (Ambiguous)."""
    if isinstance(ref, int) or ascii_int(ref) is not None:
        telegram_id = ref if isinstance(ref, int) else ascii_int(ref)
        if not 0 <= telegram_id < 2**63:  # the column is a signed 64-bit integer; no user has such an id
            return None
        return User.get_or_none(User.telegram_id == telegram_id)
    name = str(ref).lstrip("@")
    found = list(User.select().where(pw.fn.LOWER(User.username) == name.lower()).order_by(User.id).limit(10))
    if len(found) > 1:
        ids = ", ".join(str(u.telegram_id) for u in found)
        raise Ambiguous(f"@{name} matches several users (Telegram ids {ids}); use the Telegram id.")
    return found[0] if found else None


def sync_admins(admin_ids) -> int:
    """Admin rights come from telegram.admin_ids: users.is_admin is set and reset to match (at every
    start of `tradebot run`, and by admin CLI commands). Returns the number of users changed."""
    ids = sorted({int(i) for i in admin_ids or ()})
    with write_tx():
        demoted = User.update(is_admin=False, updated_at=utcnow()).where(
            (User.is_admin == True) & (User.telegram_id.not_in(ids or [-1]))  # noqa: E712
        ).execute()
        promoted = 0
        if ids:
            promoted = User.update(is_admin=True, updated_at=utcnow()).where(
                (User.is_admin == False) & (User.telegram_id.in_(ids))  # noqa: E712
            ).execute()
    if demoted or promoted:
        log.info("admin rights synced with telegram.admin_ids: %d granted, %d revoked", promoted, demoted)
    return demoted + promoted


def refresh_names(user: User, username: str | None, first_name: str | None) -> User:
    """Keep the stored @username and first name current (written only when they changed). Telegram
    usernames are unique at any moment, so another user still carrying this one has a stale copy."""
    username = (username or None) and username[:64]
    first_name = (first_name or None) and first_name[:128]
    if user.username == username and user.first_name == first_name:
        return user
    with write_tx():
        if username and (user.username or "").lower() != username.lower():
            User.update(username=None).where(
                (pw.fn.LOWER(User.username) == username.lower()) & (User.id != user.id)
            ).execute()
        User.update(username=username, first_name=first_name, updated_at=utcnow()).where(
            User.id == user.id
        ).execute()
    user.username, user.first_name = username, first_name
    return user


def _need_user(ref: int | str) -> User:
    user = find_user(ref)
    if user is None:
        raise NotFound(f"No user {ref}.")
    return user


def list_users(status: str | None = None) -> list[UserView]:
    query = User.select().order_by(User.id)
    if status:
        query = query.where(User.status == status)
    out = []
    for user in query:
        pairs = UserConfig.select().where(UserConfig.user == user)
        out.append(
            UserView(
                telegram_id=user.telegram_id,
                username=user.username,
                first_name=user.first_name,
                status=user.status,
                is_admin=user.is_admin,
                pairs=pairs.count(),
                trading=pairs.where(UserConfig.is_trading).count(),
            )
        )
    return out


def approve_user(ref: int | str) -> User:
    """Pending or blocked -> active. Returns the user."""
    user = _need_user(ref)
    with write_tx():
        User.update(status="active", updated_at=utcnow()).where(User.id == user.id).execute()
        if user.status != "active":
            # Through the outbox, so an approval from the CLI reaches the user's chat too.
            events.emit(user.id, "user_approved", {"previous": user.status})
    return User.get_by_id(user.id)


def reject_user(ref: int | str, manager=None) -> User:
    """An approval request is declined: the user is blocked."""
    return block_user(ref, manager)


def block_user(ref: int | str, manager=None) -> User:
    """Blocks a user and stops every pair of theirs. Admins cannot be blocked."""
    user = _need_user(ref)
    if user.is_admin:
        raise Conflict("Admins cannot be blocked.")
    if manager is not None:
        manager.stop_user(user.id)
    with write_tx():
        User.update(status="blocked", updated_at=utcnow()).where(User.id == user.id).execute()
        UserConfig.update(is_trading=False, updated_at=utcnow()).where(UserConfig.user == user.id).execute()
    return User.get_by_id(user.id)


def unblock_user(ref: int | str) -> User:
    return approve_user(ref)


# ---------------------------------------------------------------- the service object


class Services:
    """Use cases over an App (cfg, vault, hub, manager)."""

    def __init__(self, app):
        self.app = app
        self.cfg = app.cfg
        self.vault = app.vault
        self.hub = app.hub
        self.manager = app.manager

    # ------------------------------------------------------------ access

    def is_admin_id(self, telegram_id: int) -> bool:
        return int(telegram_id) in set(self.cfg.telegram.admin_ids or [])

    def register(self, telegram_id: int, username: str | None, first_name: str | None) -> RegisterResult:
        """/start: create the user (or refresh names). Status depends on the access mode."""
        telegram_id = int(telegram_id)
        username = (username or None) and username[:64]
        first_name = (first_name or None) and first_name[:128]
        admin = self.is_admin_id(telegram_id)
        access = self.cfg.telegram.access
        with write_tx():
            user = User.get_or_none(User.telegram_id == telegram_id)
            if access == "allowlist" and not self._allowed(telegram_id):
                return RegisterResult(user, False, "refused")
            if user is not None:
                refresh_names(user, username, first_name)
                if user.is_admin != admin or (admin and user.status != "active"):
                    User.update(is_admin=admin, status="active" if admin else user.status).where(
                        User.id == user.id
                    ).execute()
                user = User.get_by_id(user.id)
                return RegisterResult(user, False, user.status)
            if admin or access == "open":
                status = "active"
            elif access == "allowlist":
                if telegram_id not in set(self.cfg.telegram.allowlist or []):
                    return RegisterResult(None, False, "refused")
                status = "active"
            else:
                status = "pending"
            user = User.create(
                telegram_id=telegram_id,
                username=None,
                first_name=first_name,
                status=status,
                is_admin=admin,
            )
            refresh_names(user, username, first_name)
        _action(User.get_by_id(user.id), "registered", status=status)
        return RegisterResult(user, True, status)

    def authorize(
        self, telegram_id: int, username: str | None = None, first_name: str | None = None, *,
        register: bool = False, names: bool = False,
    ) -> User:
        """The active user behind a chat id, or a refusal. `names`: the caller passes the sender's
        current @username and first name, stored when they changed. `register`: a first-time user is
        registered on the fly (any command works as a first message, as /start does): active in open
        mode (and for allowlisted ids), pending in approval mode (PendingApproval with new_user=True)."""
        user = User.get_or_none(User.telegram_id == int(telegram_id))
        if user is None:
            if self.cfg.telegram.access == "allowlist" and not self._allowed(telegram_id):
                raise AccessDenied("⛔ This bot is private.")
            if not register:
                raise NotRegistered("Please send /start first to register.")
            result = self.register(telegram_id, username, first_name)
            if result.status == "pending":
                raise PendingApproval(
                    "⏳ Your registration is waiting for an admin's approval.", new_user=result.created
                )
            if result.user is None or result.status != "active":
                raise AccessDenied("⛔ Access denied.")
            user = result.user
        elif names:
            refresh_names(user, username, first_name)
        if self.is_admin_id(telegram_id):
            if not user.is_admin or user.status != "active":
                User.update(is_admin=True, status="active").where(User.id == user.id).execute()
                user = User.get_by_id(user.id)
            return user
        if user.status == "blocked":
            raise Blocked("⛔ Access denied.")
        if user.status == "pending":
            raise PendingApproval("⏳ Your registration is waiting for an admin's approval.")
        if self.cfg.telegram.access == "allowlist" and not self._allowed(telegram_id):
            raise AccessDenied("⛔ This bot is private.")
        return user

    def is_member(self, telegram_id: int) -> bool:
        """An admin or an active user: a cheap check that never writes (used to route chat work)."""
        if self.is_admin_id(telegram_id):
            return True
        return User.select().where((User.telegram_id == int(telegram_id)) & (User.status == "active")).exists()

    def _allowed(self, telegram_id: int) -> bool:
        return int(telegram_id) in set(self.cfg.telegram.allowlist or []) or self.is_admin_id(telegram_id)

    def require_admin(self, user: User) -> None:
        if not self.is_admin_id(user.telegram_id):
            raise AccessDenied("That command is for admins only.")

    def admin_ids(self) -> list[int]:
        return [int(i) for i in (self.cfg.telegram.admin_ids or [])]

    # ------------------------------------------------------------ exchange connection

    def connect(
        self, user: User, exchange: str, network: str, api_key: str | None = None, secret: str | None = None
    ) -> ConnectResult:
        """Validates keys with the exchange (skipped in paper mode), then stores them encrypted."""
        _register_secrets(api_key, secret)
        if exchange not in EXCHANGES:
            raise InvalidValue(f"Unknown exchange. Use one of: {', '.join(EXCHANGES)}.")
        if network not in ("testnet", "live", "paper"):
            raise InvalidValue("Network must be testnet, live or paper.")
        if network != "paper" and (not api_key or not secret):
            raise InvalidValue("API key and secret are required (or use paper mode).")
        running = (
            UserConfig.select()
            .where((UserConfig.user == user.id) & (UserConfig.exchange == exchange) & (UserConfig.is_trading))  # noqa: E712
            .count()
        )
        existing = ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user.id) & (ExchangeCredential.exchange == exchange)
        )
        if running:
            raise Conflict(f"Stop trading on {exchange} first (/stop_trading), then connect again.")
        if existing is not None and not self._same_account(existing, network, api_key):
            # An open position was bought on the old account / network: after the switch the engine would
            # sell it on the new one, i.e. sell coins the bot never bought there (or paper coins for real).
            held = [
                p.symbol
                for p in Position.select(Position.symbol)
                .join(UserConfig, on=(Position.config == UserConfig.id))
                .where(
                    (UserConfig.user == user.id)
                    & (UserConfig.exchange == exchange)
                    & (Position.status == "open")
                )
            ]
            if held:
                where = "in paper mode" if existing.network == "paper" else f"on {existing.network}"
                raise Conflict(
                    f"Your {exchange} pairs hold open positions bought {where}: {', '.join(sorted(set(held)))}. "
                    f"Switching accounts now would sell them on the new one. Let the bot close them first "
                    f"(/start_trading, then /stop_trading when /position is empty), or remove those pairs."
                )
        if network != "paper":
            self._check_credentials(exchange, network, api_key, secret)
            key_enc, secret_enc = self.vault.encrypt(api_key), self.vault.encrypt(secret)
        else:
            key_enc = secret_enc = None
        with write_tx():
            if existing is None:
                ExchangeCredential.create(
                    user=user.id,
                    exchange=exchange,
                    network=network,
                    api_key_enc=key_enc,
                    secret_enc=secret_enc,
                )
            else:
                ExchangeCredential.update(
                    network=network, api_key_enc=key_enc, secret_enc=secret_enc, updated_at=utcnow()
                ).where(ExchangeCredential.id == existing.id).execute()
            # The pairs on this exchange now run on the new network.
            UserState.update(mode=network).where(
                UserState.config.in_(
                    UserConfig.select(UserConfig.id).where(
                        (UserConfig.user == user.id) & (UserConfig.exchange == exchange)
                    )
                )
            ).execute()
        _action(user, "connected", exchange=exchange, network=network, replaced=existing is not None)
        return ConnectResult(exchange, network, _mask(api_key), existing is not None)

    def _same_account(self, existing: ExchangeCredential, network: str, api_key: str | None) -> bool:
        """True when a reconnect keeps the account: same network and (unless paper) the same API key."""
        if existing.network != network:
            return False
        if network == "paper":
            return True
        try:
            return self.vault.decrypt(existing.api_key_enc) == api_key
        except Exception:
            return False

    def _ask_exchange(self, call, exchange: str, network: str, what: str, fallback: str):
        """Run a hub call for a chat command; any failure becomes an ExchangeRefused the user can read."""
        try:
            return call()
        except Exception as exc:  # typed exchange errors carry .user_message
            message = _asked_now_message(exc)
            if message is None:
                log.warning("%s failed on %s/%s: %s", what, exchange, network, type(exc).__name__)
                message = fallback
            raise ExchangeRefused(message) from None

    def _check_credentials(self, exchange, network, api_key, secret) -> None:
        self._ask_exchange(
            lambda: self.hub.check_credentials(exchange, network, api_key, secret), exchange, network,
            "credential check", "Could not verify the keys with the exchange. Try again later.",
        )

    def credentials(self, user: User) -> list[ExchangeCredential]:
        return list(
            ExchangeCredential.select()
            .where(ExchangeCredential.user == user.id)
            .order_by(ExchangeCredential.exchange)
        )

    def _credential(self, user: User, exchange: str) -> ExchangeCredential | None:
        return ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user.id) & (ExchangeCredential.exchange == exchange)
        )

    # ------------------------------------------------------------ pairs

    def _pairs(self, user: User):
        return (
            UserConfig.select()
            .where(UserConfig.user == user.id)
            .order_by(UserConfig.created_at, UserConfig.id)
        )

    def find_pair(
        self, user: User, symbol_text: str, exchange: str | None = None, command: str = ""
    ) -> UserConfig:
        """One of the user's own pairs by symbol (any spelling) and optional exchange."""
        key = symbol_key(symbol_text)
        matches = [c for c in self._pairs(user) if symbol_key(c.symbol) == key]
        if exchange:
            matches = [c for c in matches if c.exchange == exchange]
        if not matches:
            shown = symbol_text.upper() if len(symbol_text) <= 32 else symbol_text[:32].upper() + "…"
            where = f" on {exchange}" if exchange else ""
            raise NotFound(f"You have no pair {shown}{where}. See /listpairs.")
        if len(matches) > 1:
            names = " and ".join(c.exchange for c in matches)
            example = f"/{command or 'status'} {matches[0].symbol} {matches[0].exchange}"
            raise Ambiguous(f"You have {matches[0].symbol} on {names}. Add the exchange, e.g. {example}")
        return matches[0]

    def pair_by_id(self, user: User, config_id: int) -> UserConfig:
        """For inline buttons: the id must belong to this user."""
        config = UserConfig.get_or_none((UserConfig.id == int(config_id)) & (UserConfig.user == user.id))
        if config is None:
            raise NotFound("That pair no longer exists. See /listpairs.")
        return config

    def add_pair(
        self, user: User, symbol_text: str, budget: Decimal, exchange: str | None = None
    ) -> PairView:
        creds = self.credentials(user)
        if exchange is None:
            if not creds:
                raise NotConnected(
                    "Connect an exchange first: /connect binance <api_key> <secret> true — or /connect binance paper"
                )
            if len(creds) > 1:
                names = " or ".join(c.exchange for c in creds)
                raise Ambiguous(
                    f"You connected {names}. Add the exchange, e.g. /addpair {symbol_text} {budget} {creds[0].exchange}"
                )
            cred = creds[0]
        else:
            cred = self._credential(user, exchange)
            if cred is None:
                raise NotConnected(
                    f"Connect {exchange} first: /connect {exchange} <api_key> <secret> true — or /connect {exchange} paper"
                )
        tcfg = self.cfg.trading
        if budget < tcfg.min_budget or budget > tcfg.max_budget:
            raise InvalidValue(f"Balance must be between ${tcfg.min_budget:.2f} and ${tcfg.max_budget:.2f}.")
        if self._pairs(user).count() >= tcfg.max_pairs_per_user:
            raise Conflict(f"You already have {tcfg.max_pairs_per_user} pairs, the maximum.")
        symbol = self._resolve_symbol(cred.exchange, cred.network, symbol_text)
        risk = self.cfg.risk
        with write_tx():
            if UserConfig.get_or_none(
                (UserConfig.user == user.id)
                & (UserConfig.exchange == cred.exchange)
                & (UserConfig.symbol == symbol)
            ):
                raise Conflict(f"You already have {symbol} on {cred.exchange}.")
            config = UserConfig.create(
                user=user.id,
                exchange=cred.exchange,
                symbol=symbol,
                budget=budget,
                timeframe=tcfg.default_timeframe,
                interval_seconds=tcfg.default_interval_seconds,
                decider=tcfg.default_decider,
                max_position_percent=risk.max_position_percent,
                stop_loss_percent=risk.stop_loss_percent,
                take_profit_percent=risk.take_profit_percent,
                max_consecutive_losses=risk.max_consecutive_losses,
                daily_loss_limit_percent=risk.daily_loss_limit_percent,
                max_drawdown_percent=risk.max_drawdown_percent,
                cooldown_minutes=risk.cooldown_minutes,
            )
            UserState.create(
                user=user.id,
                config=config.id,
                status="stopped",
                mode=cred.network,
                balance=budget,
                cash=budget,
                equity=budget,
                peak_equity=budget,
            )
        _action(user, "added pair", pair=symbol, exchange=cred.exchange, budget=budget)
        return self._view(UserConfig.get_by_id(config.id))

    def funding_shortfall(self, user: User, view: PairView) -> tuple[str, Decimal, Decimal] | None:
        """(asset, free, needed) when the connected account holds less free quote currency than the user's
        pairs on that exchange may still spend (their cash), else None. Paper mode: never. Raises on
        exchange trouble (callers treat this check as best effort)."""
        cred = self._credential(user, view.exchange)
        if cred is None or cred.network == "paper" or not cred.api_key_enc:
            return None
        quote = view.symbol.split("/")[-1]
        needed = ZERO
        for config in self._pairs(user).where(UserConfig.exchange == view.exchange):
            if config.symbol.split("/")[-1] != quote:
                continue
            state = UserState.get_or_none(UserState.config == config.id)
            needed += state.cash if state is not None and state.cash is not None else config.budget
        broker = self.hub.broker(
            view.exchange,
            cred.network,
            self.vault.decrypt(cred.api_key_enc),
            self.vault.decrypt(cred.secret_enc),
        )
        free = Decimal(broker.balance().get(quote, ZERO))
        return (quote, free, needed) if free < needed else None

    def _resolve_symbol(self, exchange: str, network: str, text: str) -> str:
        return self._ask_exchange(
            lambda: self.hub.resolve_symbol(exchange, network, text), exchange, network,
            "resolve_symbol", "Could not check the symbol with the exchange. Try again later.",
        )

    def list_pairs(self, user: User) -> list[PairView]:
        # three queries for all the pairs, not two per pair (a /status is answered while 20,000 pairs trade)
        configs = list(self._pairs(user))
        ids = [c.id for c in configs]
        states = {s.config_id: s for s in UserState.select().where(UserState.config.in_(ids))} if ids else {}
        creds = {
            c.exchange: c for c in ExchangeCredential.select().where(ExchangeCredential.user == user.id)
        }
        return [self._view(c, (states.get(c.id), creds.get(c.exchange))) for c in configs]

    def status(
        self, user: User, symbol_text: str | None = None, exchange: str | None = None
    ) -> list[PairView]:
        if symbol_text:
            return [self._view(self.find_pair(user, symbol_text, exchange, "status"))]
        return self.list_pairs(user)

    def _view(self, config: UserConfig, rows: tuple | None = None) -> PairView:
        if rows is None:
            state = UserState.get_or_none(UserState.config == config.id)
            cred = ExchangeCredential.get_or_none(
                (ExchangeCredential.user == config.user_id) & (ExchangeCredential.exchange == config.exchange)
            )
        else:
            state, cred = rows
        budget = config.budget
        equity = state.equity if state is not None and state.equity is not None else budget
        pnl = equity - budget
        percent = (pnl * HUNDRED / budget) if budget else ZERO
        network = state.mode if state is not None else (cred.network if cred else "paper")
        status = "running" if config.is_trading else "stopped"
        if config.is_trading and state is not None:
            now = utcnow()
            if state.breaker_until is not None and state.breaker_until > now:
                status = "paused"
            elif state.status == "error":
                status = "error"
        return PairView(
            config_id=config.id,
            symbol=config.symbol,
            exchange=config.exchange,
            network=network,
            budget=budget,
            is_trading=bool(config.is_trading),
            status=status,
            equity=equity,
            pnl=pnl,
            pnl_percent=percent,
            breaker_until=state.breaker_until if state is not None else None,
            breaker_reason=state.breaker_reason if state is not None else None,
            last_error=state.last_error if state is not None else None,
        )

    def remove_pair(self, user: User, config: UserConfig, confirmed: bool = False) -> str:
        """Returns the symbol. Refuses while the pair trades. Without `confirmed` only checks."""
        config = self.pair_by_id(user, config.id)
        if config.is_trading or self.manager.is_running(config.id):
            raise Conflict(
                f"⚠️ Cannot remove {config.symbol} while trading is active.\nUse /stop_trading {config.symbol} first."
            )
        if confirmed:
            with write_tx():
                UserState.delete().where(UserState.config == config.id).execute()
                UserConfig.delete().where(UserConfig.id == config.id).execute()
            _action(user, "removed pair", pair=config.symbol, exchange=config.exchange)
        return config.symbol

    # ------------------------------------------------------------ trading on/off

    def start_trading(self, user: User, configs: list[UserConfig] | None = None) -> StartResult:
        configs = (
            list(self._pairs(user)) if configs is None else [self.pair_by_id(user, c.id) for c in configs]
        )
        if not configs:
            raise NotFound("You have no pairs yet. Add one: /addpair BTC/USDT 1000")
        started, already, failed = [], [], []
        for config in configs:
            if config.is_trading and self.manager.is_running(config.id):
                already.append(config.symbol)
                continue
            if self._credential(user, config.exchange) is None:
                failed.append((config.symbol, f"connect {config.exchange} first"))
                continue
            try:
                ok = self.manager.start_pair(config.id)
            except Exception as exc:
                log.exception("start_pair(%s) failed", config.id)
                failed.append((config.symbol, getattr(exc, "user_message", None) or "could not start"))
                continue
            if ok or self.manager.is_running(config.id):
                UserConfig.update(is_trading=True, updated_at=utcnow()).where(
                    UserConfig.id == config.id
                ).execute()
                started.append(config.symbol)
            else:
                state = UserState.get_or_none(UserState.config == config.id)
                failed.append((config.symbol, (state and state.last_error) or "could not start"))
        _action(user, "start trading", started=started, already=already,
                failed=[f"{sym} ({why})" for sym, why in failed])
        return StartResult(started, already, failed)

    def running_pairs(self, user: User) -> list[UserConfig]:
        return [c for c in self._pairs(user) if c.is_trading]

    def stop_trading(self, user: User, configs: list[UserConfig] | None = None) -> StopResult:
        configs = (
            list(self._pairs(user)) if configs is None else [self.pair_by_id(user, c.id) for c in configs]
        )
        stopped, already = [], []
        for config in configs:
            was = config.is_trading or self.manager.is_running(config.id)
            self.manager.stop_pair(config.id)
            UserConfig.update(is_trading=False, updated_at=utcnow()).where(
                UserConfig.id == config.id
            ).execute()
            (stopped if was else already).append(config.symbol)
        _action(user, "stop trading", stopped=stopped, already=already)
        return StopResult(stopped, already)

    def reset_breaker(self, user: User, config: UserConfig) -> str:
        """Clears the pair's tripped circuit breaker (and the user-scope one). The engine decides."""
        config = self.pair_by_id(user, config.id)
        if not self.manager.reset_breaker(config.id):
            raise Conflict(f"The circuit breaker of {config.symbol} is not tripped.")
        _action(user, "reset breaker", pair=config.symbol, exchange=config.exchange)
        return config.symbol

    # ------------------------------------------------------------ settings

    def set_setting(self, user: User, config: UserConfig, name: str, value) -> SettingChange:
        """`value` is a Decimal already parsed; range-checked here."""
        key = SETTING_ALIASES.get(name.lower(), name.lower())
        if key in TEXT_SETTINGS:
            return self._set_text_setting(user, config, key, str(value))
        if key not in SETTINGS:
            raise InvalidValue(f"Unknown setting. Use one of: {', '.join([*SETTINGS, *TEXT_SETTINGS])}.")
        column, kind, lo, hi, _ = SETTINGS[key]
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InvalidValue("That value is not a number.")
        if value < lo or value > hi:
            raise InvalidValue(f"{key} must be between {_plain(lo)} and {_plain(hi)}.")
        if kind == "int":
            if value != value.to_integral_value():
                raise InvalidValue(f"{key} must be a whole number.")
            new: Any = int(value)
        else:
            new = value
        config = self.pair_by_id(user, config.id)
        old = getattr(config, column)
        UserConfig.update({getattr(UserConfig, column): new, UserConfig.updated_at: utcnow()}).where(
            UserConfig.id == config.id
        ).execute()
        _action(user, "set", pair=config.symbol, exchange=config.exchange, setting=key, old=old, new=new)
        return SettingChange(config.symbol, config.exchange, key, old, new)

    def _set_text_setting(self, user: User, config: UserConfig, key: str, value: str) -> SettingChange:
        column, allowed, _ = TEXT_SETTINGS[key]
        value = value.strip().lower()
        if value not in allowed:
            raise InvalidValue(f"{key} must be one of: {', '.join(allowed)}.")
        if key == "decider" and value != "technical" and not self.app.cfg.llm.api_key:
            raise InvalidValue("The LLM decider is not configured on this bot (ask the administrator).")
        config = self.pair_by_id(user, config.id)
        old = getattr(config, column)
        UserConfig.update({getattr(UserConfig, column): value, UserConfig.updated_at: utcnow()}).where(
            UserConfig.id == config.id
        ).execute()
        _action(user, "set", pair=config.symbol, exchange=config.exchange, setting=key, old=old, new=value)
        return SettingChange(config.symbol, config.exchange, key, old, value)

    def set_notify(self, user: User, on: bool) -> bool:
        User.update(notify=bool(on), updated_at=utcnow()).where(User.id == user.id).execute()
        _action(user, "notify", on=bool(on))
        return bool(on)

    # ------------------------------------------------------------ reading

    def config_view(self, user: User, configs: list[UserConfig] | None = None) -> ConfigView:
        creds = []
        for cred in self.credentials(user):
            masked = None
            if cred.api_key_enc:
                try:
                    masked = _mask(self.vault.decrypt(cred.api_key_enc))
                except Exception:
                    masked = "(cannot decrypt)"
            creds.append(CredentialView(cred.exchange, cred.network, masked))
        configs = list(self._pairs(user)) if configs is None else configs
        pairs = []
        for config in configs:
            settings = {name: getattr(config, spec[0]) for name, spec in SETTINGS.items()}
            settings.update(
                timeframe=config.timeframe, interval_seconds=config.interval_seconds, decider=config.decider
            )
            pairs.append(PairConfigView(self._view(config), settings))
        fresh = User.get_by_id(user.id)
        return ConfigView(creds, pairs, bool(fresh.notify))

    def stats(self, user: User) -> StatsView:
        per_pair = []
        ids = set()
        for config in self._pairs(user):
            ids.add(config.id)
            trades = list(Trade.select().where((Trade.user == user.id) & (Trade.config == config.id)))
            per_pair.append(_trade_stats(f"{config.symbol} ({config.exchange})", trades))
        every = list(Trade.select().where(Trade.user == user.id))
        # Trades of removed pairs are kept (config set to NULL) and count in the total: show them as a row
        # of their own, so that the rows add up to the total.
        gone = [t for t in every if t.config_id is None or t.config_id not in ids]
        if gone:
            per_pair.append(_trade_stats("Removed pairs", gone))
        return StatsView(per_pair, _trade_stats("Total", every))

    def positions(self, user: User, configs: list[UserConfig] | None = None) -> list[PositionView]:
        configs = list(self._pairs(user)) if configs is None else configs
        ids = [c.id for c in configs]
        if not ids:
            return []
        out = []
        query = (
            Position.select()
            .where((Position.user == user.id) & (Position.config.in_(ids)) & (Position.status == "open"))
            .order_by(Position.opened_at)
        )
        for pos in query:
            state = UserState.get_or_none(UserState.config == pos.config_id)
            last = state.last_price if state is not None else None
            upnl = upct = None
            if last is not None:
                upnl = pos.amount * last - pos.cost_basis
                upct = (upnl * HUNDRED / pos.cost_basis) if pos.cost_basis else ZERO
            out.append(
                PositionView(
                    symbol=pos.symbol,
                    exchange=pos.exchange,
                    amount=pos.amount,
                    entry_price=pos.entry_price,
                    last_price=last,
                    cost_basis=pos.cost_basis,
                    unrealized_pnl=upnl,
                    unrealized_percent=upct,
                    stop_loss_price=pos.stop_loss_price,
                    take_profit_price=pos.take_profit_price,
                    opened_at=pos.opened_at,
                )
            )
        return out

    # ------------------------------------------------------------ admin

    def admin_list_users(self, admin: User) -> list[UserView]:
        self.require_admin(admin)
        return list_users()

    def admin_approve(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        return self._admin_did(admin, "approved", approve_user(ref))

    def admin_reject(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        return self._admin_did(admin, "rejected", reject_user(ref, self.manager))

    @staticmethod
    def _admin_did(admin: User, what: str, target: User) -> User:
        _action(admin, f"admin {what} a user", target=target.telegram_id, status=target.status)
        return target

    def admin_block(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        target = _need_user(ref)
        if target.id == admin.id or self.is_admin_id(target.telegram_id):
            raise Conflict("Admins cannot be blocked.")
        return self._admin_did(admin, "blocked", block_user(ref, self.manager))

    def admin_unblock(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        return self._admin_did(admin, "unblocked", unblock_user(ref))

    def admin_stop_all(self, admin: User) -> int:
        """Emergency switch: every pair of every user stops."""
        self.require_admin(admin)
        stopped = self.manager.stop_all()
        UserConfig.update(is_trading=False, updated_at=utcnow()).where(UserConfig.is_trading).execute()
        _action(admin, "admin stopped all trading", pairs=int(stopped or 0))
        return int(stopped or 0)

    def admin_running_count(self, admin: User) -> int:
        self.require_admin(admin)
        return UserConfig.select().where(UserConfig.is_trading).count()


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _trade_stats(label: str, trades: list[Trade]) -> TradeStats:
    closed = [t.pnl for t in trades if t.pnl is not None]
    return TradeStats(
        label=label,
        fills=len(trades),
        closed=len(closed),
        wins=sum(1 for p in closed if p > 0),
        losses=sum(1 for p in closed if p <= 0),
        realized_pnl=sum(closed, ZERO),
        best=max(closed) if closed else None,
        worst=min(closed) if closed else None,
        fees=sum((t.fee or ZERO for t in trades), ZERO),
    )
