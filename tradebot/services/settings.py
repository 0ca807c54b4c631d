"""What /set can change on a pair (names, ranges, aliases) and /set, /notify themselves."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..models import Position, User, UserConfig, utcnow
from ..risk_futures import max_safe_stop_loss, stop_loss_problem
from .common import _action, _plain
from .views import InvalidValue, SettingChange

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
    "trailing_stop": (
        "trailing_stop_percent",
        "percent",
        Decimal("0"),
        Decimal("50"),
        "trailing stop, % from the best price since entry (0 = off)",
    ),
    # futures pairs only; the upper bound is the operator's risk.max_leverage (checked in set_setting)
    "leverage": ("leverage", "int", Decimal("1"), Decimal("20"), "futures leverage, 1 to the bot's cap"),
}
FUTURES_ONLY = ("leverage", "margin", "direction")
# Settings whose value is a word: name -> (model field, allowed values, description).
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
TEXT_SETTINGS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "timeframe": ("timeframe", TIMEFRAMES, "candle timeframe the decider reads"),
    "decider": ("decider", ("technical", "llm", "ensemble"),
                "who decides: technical, llm, llm:<provider> or ensemble (see /help)"),
    "margin": ("margin_mode", ("isolated", "cross"), "futures margin mode: isolated or cross"),
    "direction": ("direction", ("both", "long", "short"), "futures: which positions may open"),
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
    "trailing": "trailing_stop",
    "trailing_stop_percent": "trailing_stop",
    "lev": "leverage",
    "margin_mode": "margin",
}


class SettingsMixin:
    """Settings use cases (part of Services)."""

    def set_setting(self, user: User, config: UserConfig, name: str, value) -> SettingChange:
        """`value` is a Decimal already parsed; range-checked here."""
        key = SETTING_ALIASES.get(name.lower(), name.lower())
        if key in FUTURES_ONLY and getattr(config, "market_type", "spot") != "futures":
            raise InvalidValue(f"{key} applies to futures pairs only; {config.symbol} is a spot pair.")
        if key == "preset":
            return self.apply_preset(user, config, str(value))
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
        if getattr(config, "market_type", "spot") == "futures" and key in ("leverage", "stop_loss"):
            self._check_futures_risk(config, key, new)
        return self._store_setting(user, config, key, column, new)

    def _check_futures_risk(self, config: UserConfig, key: str, new) -> None:
        """Leverage within the bot's cap, not changed under an open position, and a stop-loss well inside
        the liquidation price (the numbers are in the refusal)."""
        leverage = new if key == "leverage" else int(config.leverage or 1)
        stop = new if key == "stop_loss" else config.stop_loss_percent
        if key == "leverage":
            cap = getattr(self.cfg.risk, "max_leverage", 3)
            if leverage > cap:
                raise InvalidValue(f"leverage must be between 1 and {cap} (this bot's cap).")
            if self._has_open_position(config):
                raise InvalidValue(f"{config.symbol} has an open position: close it (or wait) before changing "
                                   "the leverage.")
        problem = stop_loss_problem(leverage, Decimal(stop))
        if problem:
            hint = (f"Lower the stop-loss first: /set {config.symbol} stop_loss {max_safe_stop_loss(leverage)}"
                    if key == "leverage" else f"Use a stop-loss of at most {max_safe_stop_loss(leverage)}% or a "
                    "lower leverage.")
            raise InvalidValue(f"Refused: {problem}. {hint}")

    @staticmethod
    def _has_open_position(config: UserConfig) -> bool:
        return Position.select().where((Position.config == config.id) & (Position.status == "open")).exists()

    def _set_text_setting(self, user: User, config: UserConfig, key: str, value: str) -> SettingChange:
        column, allowed, _ = TEXT_SETTINGS[key]
        value = value.strip().lower()
        if key == "decider":  # technical, llm, llm:<provider>, ensemble: what this bot's config offers
            return self._store_setting(user, config, key, column, self.check_decider(value))
        if value not in allowed:
            raise InvalidValue(f"{key} must be one of: {', '.join(allowed)}.")
        if key == "margin" and value != config.margin_mode and self._has_open_position(config):
            raise InvalidValue(f"{config.symbol} has an open position: the margin mode can change once it is closed.")
        return self._store_setting(user, config, key, column, value)

    def _store_setting(self, user: User, config: UserConfig, key: str, column: str, new: Any) -> SettingChange:
        """Write one validated setting of the user's pair (re-read: it may have changed) and log the action."""
        config = self.pair_by_id(user, config.id)
        old = getattr(config, column)
        UserConfig.update({getattr(UserConfig, column): new, UserConfig.updated_at: utcnow()}).where(
            UserConfig.id == config.id
        ).execute()
        _action(user, "set", pair=config.symbol, exchange=config.exchange, setting=key, old=old, new=new)
        return SettingChange(config.symbol, config.exchange, key, old, new)

    def apply_preset(self, user: User, config: UserConfig, name: str) -> SettingChange:
        """Copy a [presets.<name>] (timeframe, risk settings) onto the pair and record its name, so the engine
        builds the pair's technical decider with the preset's parameters. 'none' forgets the preset (the
        decider's defaults again); the copied settings stay as they are."""
        presets = getattr(self.app.cfg, "presets", None) or {}
        name = name.strip().lower()
        config = self.pair_by_id(user, config.id)
        old = getattr(config, "preset", None)
        if name in ("none", "off", "default", "defaults"):
            new_values: dict[str, Any] = {"preset": None}
            new = None
        else:
            preset = presets.get(name)
            if preset is None:
                known = ", ".join(sorted(presets)) or "none is configured on this bot"
                raise InvalidValue(f"Unknown preset {name!r}. Presets: {known}.")
            new_values = dict(preset.columns, preset=name)
            if preset.timeframe:
                new_values["timeframe"] = preset.timeframe
            new = f"{name} ({preset.summary()})"
        UserConfig.update({**{getattr(UserConfig, k): v for k, v in new_values.items()},
                           UserConfig.updated_at: utcnow()}).where(UserConfig.id == config.id).execute()
        _action(user, "set", pair=config.symbol, exchange=config.exchange, setting="preset", old=old,
                new=new_values.get("preset"))
        return SettingChange(config.symbol, config.exchange, "preset", old or "none", new or "none")

    def set_notify(self, user: User, on: bool) -> bool:
        User.update(notify=bool(on), updated_at=utcnow()).where(User.id == user.id).execute()
        _action(user, "notify", on=bool(on))
        return bool(on)

    def set_notify_chart(self, user: User, on: bool) -> bool:
        """/notify chart on|off: the daily summary carries the total equity chart."""
        User.update(notify_chart=bool(on), updated_at=utcnow()).where(User.id == user.id).execute()
        _action(user, "notify", chart=bool(on))
        return bool(on)

    def set_reply_keyboard(self, user: User, on: bool) -> bool:
        """/keyboard on|off: the everyday-commands keyboard under the message field."""
        User.update(reply_keyboard=bool(on), updated_at=utcnow()).where(User.id == user.id).execute()
        _action(user, "keyboard", on=bool(on))
        return bool(on)

    def wants_reply_keyboard(self, user: User) -> bool:
        fresh = User.get_or_none(User.id == user.id)
        return bool(fresh is not None and fresh.reply_keyboard)
