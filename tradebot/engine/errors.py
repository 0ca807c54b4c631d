"""How the engine classifies exceptions from the exchange layer."""

from __future__ import annotations

try:  # the exchange layer's typed errors (exchange/errors.py)
    from ..exchange.errors import ExchangeError, ExchangeUnavailable
except ImportError:  # pragma: no cover - before the exchange layer exists

    class ExchangeError(Exception):
        user_message = "exchange error"
        needs_user_action = False

    class ExchangeUnavailable(ExchangeError):
        pass


class NetworkChanged(ExchangeError):
    """The pair holds a position (or an unsettled order) from another network than the one its exchange is
    connected to now: trading it would sell coins never bought on this account."""

    needs_user_action = True


def is_ambiguous(exc: BaseException) -> bool:
    """True when an order may or may not have reached the exchange (timeouts, network errors, unknown
    failures): the intent stays pending and is looked up by client id, never re-sent."""
    if isinstance(exc, ExchangeUnavailable):
        return True
    if isinstance(exc, ExchangeError):
        return False
    return True


def needs_user_action(exc: BaseException) -> bool:
    return bool(getattr(exc, "needs_user_action", False))


def user_message(exc: BaseException) -> str:
    msg = getattr(exc, "user_message", None)
    if msg:
        return str(msg)
    return f"{type(exc).__name__}: {exc}"[:300]
