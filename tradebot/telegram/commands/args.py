"""Argument helpers the command handlers share: the Usage refusal, [symbol] [exchange] and exchange names."""

from __future__ import annotations

from ..parsing import EXCHANGES, ParseError, check_symbol_text, parse_exchange


class Usage(Exception):
    """Wrong arguments: answer with the command's usage line (and the problem, if known)."""

    def __init__(self, command: str, problem: str | None = None):
        super().__init__(problem or "")
        self.command = command
        self.problem = problem


def symbol_and_exchange(command: str, args: list[str], required: bool) -> tuple[str | None, str | None]:
    """[symbol] [exchange] arguments; a lone exchange name is accepted too (/status bybit)."""
    if not args:
        if required:
            raise Usage(command, "The symbol is missing.")
        return None, None
    if len(args) > 2:
        raise Usage(command, "Too many arguments.")
    if len(args) == 1 and args[0].lower() in EXCHANGES and not required:
        return None, args[0].lower()
    symbol = args[0]
    try:
        check_symbol_text(symbol)
    except ParseError as exc:
        raise Usage(command, str(exc)) from None
    exchange = None
    if len(args) == 2:
        try:
            exchange = parse_exchange(args[1])
        except ParseError as exc:
            raise Usage(command, str(exc)) from None
    return symbol, exchange


def exchange_arg(command: str, text: str) -> str:
    try:
        return parse_exchange(text)
    except ParseError as exc:
        raise Usage(command, str(exc)) from None
