"""The exchange layer's typed errors, ccxt error translation, and bounded retries for reads.

Every error carries `user_message` (short, for the chat, never a secret) and `needs_user_action`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import ccxt

log = logging.getLogger(__name__)
T = TypeVar("T")


class ExchangeError(Exception):
    needs_user_action = False

    def __init__(self, user_message: str):
        super().__init__(user_message)
        self.user_message = user_message


class AuthenticationFailed(ExchangeError):
    needs_user_action = True


class PermissionDenied(ExchangeError):
    needs_user_action = True


class WrongNetwork(ExchangeError):
    needs_user_action = True


class InsufficientFunds(ExchangeError):
    needs_user_action = True


class InvalidOrder(ExchangeError):
    pass


class BelowMinimum(InvalidOrder):
    needs_user_action = True


class ReduceOnlyRejected(InvalidOrder):
    """A reduce-only exit refused: the exchange's position is smaller than the bot's book, or gone."""


class UnknownSymbol(ExchangeError):
    needs_user_action = True


class ExchangeUnavailable(ExchangeError):
    pass


class OrderNotFound(ExchangeError):
    pass


RETRIABLE = (ccxt.NetworkError,)  # RequestTimeout, ExchangeNotAvailable, DDoSProtection, RateLimitExceeded, ...


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, RETRIABLE)


def translate(exc: BaseException, exchange: str = "") -> ExchangeError:
    """Map a ccxt exception to our typed error. Messages never include the raw body (may echo keys)."""
    name = exchange.capitalize() or "The exchange"
    if isinstance(exc, ExchangeError):
        return exc
    text = str(exc)
    # futures rejections ccxt raises as a bare ExchangeError: never "ambiguous", the order was refused
    if '"-2022"' in text or '"code": -2022' in text or "110017" in text:
        return ReduceOnlyRejected(f"{name} refused the reduce-only exit: the position there is smaller than the "
                                  "bot's book or already closed.")
    if '"code": -2019' in text or "110007" in text or "110004" in text:
        return InsufficientFunds(f"Insufficient margin on {name} for this futures order.")
    if isinstance(exc, ccxt.PermissionDenied):
        return PermissionDenied(f"{name} refused: the API key lacks the permission for this action.")
    if isinstance(exc, ccxt.AuthenticationError) or "-2015" in text or "-1022" in text:
        return AuthenticationFailed(f"{name} rejected the API key or signature. Check the key, secret, permissions and IP whitelist.")
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(f"Insufficient balance on {name} for this order.")
    if "NOTIONAL" in text or "170140" in text or "170136" in text:
        return BelowMinimum(f"{name} refused the order: it is below the minimum order size.")
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(f"{name} does not know this order.")
    if isinstance(exc, ccxt.BadSymbol):
        return UnknownSymbol(f"{name} does not list this symbol.")
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadRequest):
        return InvalidOrder(f"{name} refused the order as invalid.")
    if isinstance(exc, ccxt.NetworkError):
        return ExchangeUnavailable(f"{name} is not reachable right now; will retry.")
    return ExchangeUnavailable(f"{name} returned an unexpected error.")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter' so retrying threads spread out."""
        d = min(self.max_delay, self.base_delay * (2**attempt))
        return d / 2 + random.uniform(0, d / 2)


def with_retry(fn: Callable[[], T], policy: RetryPolicy, exchange: str = "", what: str = "") -> T:
    """Run a READ with bounded retries on retriable failures; others raise as typed errors at once.

    Never use for create_order: a retried order could be placed twice (see live.py).
    """
    for attempt in range(policy.attempts):
        try:
            return fn()
        except ExchangeError:
            raise
        except Exception as exc:
            if not is_retriable(exc) or attempt == policy.attempts - 1:
                raise translate(exc, exchange) from exc
            log.info("%s %s failed (%s), retry %d", exchange, what, type(exc).__name__, attempt + 1)
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")
