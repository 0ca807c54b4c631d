"""Use cases shared by the Telegram chat and the CLI. Authorization lives here.

Rules:
- Every function that touches a pair takes the acting `User` and only ever looks at that user's rows, so no
  command of one user can see or change another user's pairs (ids in callback data are checked too).
- Errors the user should see are `ServiceError` subclasses whose `str()` is a short plain-text message with
  no secrets in it; the chat layer escapes and formats it.
- No telebot, no click: callers translate chat / command-line input into these calls.

One module per domain, `Services` composes them; callers import from here:
  access.py    /start, authorization, admin commands     users.py    user records (also the CLI's)
  accounts.py  /connect, credentials                      pairs.py    /addpair /removepair /listpairs /status
  trading.py   /start_trading /stop_trading /reset_breaker settings.py /set /notify and what /set may change
  reports.py   /config /stats /position                   views.py    errors and plain-data views
  charts.py    /chart /equity (data for tradebot/charts)  history.py  /trades /export
"""

from __future__ import annotations

from .access import AccessMixin, AdminMixin
from .accounts import AccountsMixin
from .charts import ChartImage, ChartsMixin, ChartsOff
from .common import EXCHANGES, _register_secrets, symbol_key
from .history import HistoryMixin, RoundTripView
from .llm import LLMMixin, MemberVote, WhyView, available_deciders, llm_usage
from .pairs import PairsMixin
from .reports import ReportsMixin
from .settings import SETTING_ALIASES, SETTINGS, TEXT_SETTINGS, TIMEFRAMES, SettingsMixin
from .trading import TradingMixin
from .users import (
    approve_user,
    block_user,
    find_user,
    list_users,
    refresh_names,
    reject_user,
    sync_admins,
    unblock_user,
)
from .views import (
    AccessDenied,
    Ambiguous,
    Blocked,
    ConfigView,
    Conflict,
    ConnectResult,
    CredentialView,
    ExchangeRefused,
    InvalidValue,
    NotConnected,
    NotFound,
    NotRegistered,
    PairConfigView,
    PairView,
    PendingApproval,
    PositionView,
    RegisterResult,
    ServiceError,
    SettingChange,
    StartResult,
    StatsView,
    StopResult,
    TradeStats,
    UserView,
)

__all__ = [
    "EXCHANGES", "SETTINGS", "SETTING_ALIASES", "TEXT_SETTINGS", "TIMEFRAMES", "Services", "_register_secrets",
    "symbol_key", "approve_user", "block_user", "find_user", "list_users", "refresh_names", "reject_user",
    "sync_admins", "unblock_user", "AccessDenied", "Ambiguous", "Blocked", "ConfigView", "Conflict",
    "ConnectResult", "CredentialView", "ExchangeRefused", "InvalidValue", "NotConnected", "NotFound",
    "NotRegistered", "PairConfigView", "PairView", "PendingApproval", "PositionView", "RegisterResult",
    "ServiceError", "SettingChange", "StartResult", "StatsView", "StopResult", "TradeStats", "UserView",
    "LLMMixin", "MemberVote", "WhyView", "available_deciders", "llm_usage",
    "ChartImage", "ChartsOff", "RoundTripView",
]


class Services(
    AccessMixin, AdminMixin, AccountsMixin, PairsMixin, TradingMixin, SettingsMixin, ReportsMixin, LLMMixin,
    ChartsMixin, HistoryMixin,
):
    """Use cases over an App (cfg, vault, hub, manager). The mixins call each other through `self`
    (e.g. /addpair needs the user's credentials), so they only work composed here."""

    def __init__(self, app):
        self.app = app
        self.cfg = app.cfg
        self.vault = app.vault
        self.hub = app.hub
        self.manager = app.manager
