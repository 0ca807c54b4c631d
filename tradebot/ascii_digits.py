"""Integers typed by people: ASCII digits only.

`str.isdigit()` is true for '²' (which `int()` then rejects with ValueError) and `int()` quietly accepts
'١٢' or fullwidth '１２': neither belongs in an id, a count or an amount."""

from __future__ import annotations

import re

_INT = re.compile(r"-?[0-9]+", re.ASCII)
_UINT = re.compile(r"[0-9]+", re.ASCII)


def ascii_int(text, *, signed: bool = False, max_digits: int = 19) -> int | None:
    """The integer `text` spells in ASCII digits (an optional '-' when `signed`), else None."""
    if not isinstance(text, str) or len(text.lstrip("-")) > max_digits:
        return None
    if not (_INT if signed else _UINT).fullmatch(text):
        return None
    return int(text)


def is_ascii_number(text: str) -> bool:
    """Only ASCII characters, so Decimal()/float() cannot read non-ASCII digits."""
    return isinstance(text, str) and text.isascii()
