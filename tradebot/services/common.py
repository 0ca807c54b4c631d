"""Helpers every service domain shares: the action log line, secret masking and registration, the exchange's
error text for a request the user waits for, symbol keys and Decimal constants."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

from ..models import User

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


def symbol_key(text: str) -> str:
    """Separator- and case-insensitive form of a symbol: 'btc-usdt' and 'BTC/USDT' both give 'BTCUSDT'."""
    return re.sub(r"[^A-Z0-9]", "", (text or "").upper())


def _mask(value: str | None) -> str | None:
    if not value:
        return None
    try:
        from ..vault import mask

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
        from ..exchange.errors import ExchangeUnavailable
    except ImportError:  # pragma: no cover
        return message
    if isinstance(exc, ExchangeUnavailable):
        message = re.sub(r"[;.]\s*will retry\.?$", ".", message.strip())
        message += " Try again in a minute."
    return message


def _register_secrets(*values: str | None) -> None:
    try:
        from ..logging_setup import register_secret
    except ImportError:  # pragma: no cover
        return
    for value in values:
        register_secret(value)


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
