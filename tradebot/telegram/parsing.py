"""Parsing of chat input: command words, numbers, symbols, flags. Pure functions, no telebot.

Every parser raises `ParseError` with a short user-facing message; nothing here may raise anything else
for any input string.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ..ascii_digits import ascii_int

MAX_MESSAGE_CHARS = 1000  # longer commands are refused outright
MAX_ARG_CHARS = 128
MAX_ARGS = 8

EXCHANGES = ("binance", "bybit")

# Quote currencies tried (longest first) when a symbol comes without a separator, e.g. "btcusdt".
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDE", "DAI", "EUR", "TRY", "BTC", "ETH", "BNB")

_COMMAND_RE = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?$")
_AMOUNT_RE = re.compile(r"^\$?([0-9]{1,12})(?:\.([0-9]{1,8}))?$")
_SYMBOL_PART = re.compile(r"^[A-Z0-9]{1,15}$")


class ParseError(ValueError):
    """Invalid user input; `str(exc)` is safe to show to the user (plain text)."""


def split_command(text: str) -> tuple[str, str | None, list[str]]:
    """'/cmd@bot a b' -> ('cmd', 'bot', ['a', 'b']). Raises ParseError for non-commands."""
    if not isinstance(text, str):
        raise ParseError("empty message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ParseError(f"That message is too long (over {MAX_MESSAGE_CHARS} characters).")
    parts = text.split()
    if not parts or not parts[0].startswith("/"):
        raise ParseError("not a command")
    match = _COMMAND_RE.match(parts[0])
    if not match:
        raise ParseError("not a command")
    args = parts[1:]
    return match.group(1).lower(), match.group(2), args


def check_args(args: list[str], min_n: int, max_n: int) -> None:
    if len(args) < min_n:
        raise ParseError("missing arguments")
    if len(args) > max_n:
        raise ParseError("too many arguments")
    for arg in args:
        if len(arg) > MAX_ARG_CHARS:
            raise ParseError(f"An argument is too long (over {MAX_ARG_CHARS} characters).")


def _parse_decimal(text: str, what: str) -> Decimal:
    raw = (text or "").strip()
    if not raw:
        raise ParseError(f"{what} is missing.")
    if len(raw) > 32:
        raise ParseError(f"{what} is too long to be a number.")
    lowered = raw.lower()
    if any(word in lowered for word in ("nan", "inf")):
        raise ParseError(f"{what} must be a normal number, like 1000 or 250.50.")
    if raw.startswith("-"):
        raise ParseError(f"{what} must be positive.")
    if "," in raw or "_" in raw or " " in raw:
        raise ParseError(f"{what}: write the number without separators, like 1000 or 1000.50.")
    if "e" in lowered:
        raise ParseError(f"{what}: write the number plainly, like 1000 (no exponent).")
    match = _AMOUNT_RE.match(raw)
    if not match:
        digits = re.fullmatch(r"\$?([0-9]+)(?:\.([0-9]+))?", raw)
        if digits and len(digits.group(1).lstrip("0")) > 12:
            raise ParseError(f"{what} is far too large.")
        if digits and digits.group(2) and len(digits.group(2)) > 8:
            raise ParseError(f"{what}: use at most 8 decimals.")
        raise ParseError(f"{what} must be a number, like 1000 or 250.50 (up to 8 decimals).")
    try:
        value = Decimal(raw.lstrip("$"))
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a valid literal
        raise ParseError(f"{what} must be a number.") from None
    return value


def parse_amount(
    text: str, what: str = "Amount", lo: Decimal | None = None, hi: Decimal | None = None
) -> Decimal:
    """A strictly positive money amount, within [lo, hi] when given."""
    value = _parse_decimal(text, what)
    if value <= 0:
        raise ParseError(f"{what} must be greater than 0.")
    if lo is not None and value < lo:
        raise ParseError(f"{what} must be at least ${lo:.2f}.")
    if hi is not None and value > hi:
        raise ParseError(f"{what} must be at most ${hi:.2f}.")
    return value


def parse_number(text: str, what: str, lo: Decimal, hi: Decimal, integer: bool = False) -> Decimal:
    """A number within [lo, hi] (lo may be 0); integers when `integer`."""
    value = _parse_decimal(text, what)
    if integer and value != value.to_integral_value():
        raise ParseError(f"{what} must be a whole number.")
    if value < lo or value > hi:
        raise ParseError(f"{what} must be between {_plain(lo)} and {_plain(hi)}.")
    return value


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def normalize_symbol(text: str) -> str:
    """btcusdt / BTC-USDT / btc_usdt / btc/usdt -> 'BTC/USDT'. Raises ParseError when it is not symbol-like.

    Without a separator the quote currency is guessed from KNOWN_QUOTES; the exchange layer still
    validates the result against its markets."""
    raw = (text or "").strip().upper()
    if not raw:
        raise ParseError("The symbol is missing.")
    if len(raw) > 32:
        raise ParseError("That symbol is too long.")
    parts = re.split(r"[/\-_:]", raw)
    if len(parts) == 2:
        base, quote = parts
        if _SYMBOL_PART.match(base) and _SYMBOL_PART.match(quote):
            return f"{base}/{quote}"
        raise ParseError(f"'{text}' is not a valid symbol. Use the form BTC/USDT.")
    if len(parts) == 1 and re.fullmatch(r"[A-Z0-9]{2,30}", raw):
        for quote in KNOWN_QUOTES:
            if raw.endswith(quote) and len(raw) > len(quote):
                return f"{raw[: -len(quote)]}/{quote}"
        raise ParseError(f"'{text}' is not a valid symbol. Use the form BTC/USDT.")
    raise ParseError(f"'{text}' is not a valid symbol. Use the form BTC/USDT.")


def check_symbol_text(text: str) -> str:
    """Syntax check only (the exchange's markets decide the rest): 'BTC/USDT', 'btcusdt', 'btc-usdt', and
    perpetuals 'BTC/USDT:USDT', 'btcusdt.p', 'BTC-USDT-SWAP'."""
    raw = (text or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9]{1,20}(?:[/\-_:][A-Za-z0-9]{1,20}){0,2}(?:\.[Pp])?", raw):
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        raise ParseError(f"'{shown}' is not a valid symbol. Use the form BTC/USDT.")
    return raw


def symbol_key(text: str) -> str:
    """Separator- and case-insensitive key used to match a user's input against their own pairs."""
    return re.sub(r"[^A-Z0-9]", "", (text or "").upper())


def looks_like_symbol(text: str) -> bool:
    try:
        normalize_symbol(text)
        return True
    except ParseError:
        return False


def parse_exchange(text: str) -> str:
    name = (text or "").strip().lower()
    if name not in EXCHANGES:
        raise ParseError(f"Unknown exchange. Use one of: {', '.join(EXCHANGES)}.")
    return name


NETWORK_WORDS = {
    "true": "testnet",
    "testnet": "testnet",
    "test": "testnet",
    "yes": "testnet",
    "1": "testnet",
    "false": "live",
    "live": "live",
    "mainnet": "live",
    "no": "live",
    "0": "live",
    "paper": "paper",
}


def parse_network(text: str) -> str:
    word = (text or "").strip().lower()
    if word not in NETWORK_WORDS:
        raise ParseError("The last argument must be true (testnet), false (live) or paper.")
    return NETWORK_WORDS[word]


def parse_on_off(text: str) -> bool:
    word = (text or "").strip().lower()
    if word in ("on", "yes", "true", "1"):
        return True
    if word in ("off", "no", "false", "0"):
        return False
    raise ParseError("Use on or off.")


def parse_user_ref(text: str) -> int | str:
    """An admin's reference to a user: a Telegram id (digits) or @username."""
    raw = (text or "").strip()
    if (number := ascii_int(raw, max_digits=15)) is not None:
        return number
    if re.fullmatch(r"@?[A-Za-z0-9_]{3,64}", raw):
        return raw.lstrip("@")
    raise ParseError("Give a Telegram user id (digits) or @username.")
