"""The command list (/help, usage lines) and the generic replies: errors, unknown commands, rate limit."""

from __future__ import annotations

from ...services import (
    SETTINGS,
    TEXT_SETTINGS,
)
from .base import e

# ---------------------------------------------------------------- commands

COMMANDS: list[tuple[str, str, str, str]] = [
    # (command, args, description, example)
    ("start", "", "Register in the system", "/start"),
    (
        "connect",
        "<exchange> <api_key> <secret> [testnet]",
        "Connect exchange (or: <exchange> paper)",
        "/connect binance abc123key xyz789secret true",
    ),
    ("addpair", "<symbol> <balance> [exchange]", "Add trading pair", "/addpair BTC/USDT 1000"),
    ("listpairs", "", "Show all your pairs", "/listpairs"),
    ("removepair", "<symbol> [exchange]", "Remove trading pair", "/removepair BTC/USDT"),
    (
        "start_trading",
        "[symbol] [exchange]",
        "Start trading (all pairs or specific)",
        "/start_trading BTC/USDT",
    ),
    ("stop_trading", "[symbol] [exchange]", "Stop trading (all pairs or specific)", "/stop_trading BTC/USDT"),
    ("status", "[symbol] [exchange]", "Check status (all pairs or specific)", "/status BTC/USDT"),
    ("config", "[symbol] [exchange]", "View configuration", "/config BTC/USDT"),
    ("mystats", "", "View your trading statistics", "/mystats"),
    ("position", "[symbol] [exchange]", "See current position", "/position BTC/USDT"),
    (
        "set",
        "<symbol> <setting> <value> [exchange]",
        "Change a pair's risk setting, timeframe or decider",
        "/set BTC/USDT stop_loss 3",
    ),
    ("notify", "on|off | chart on|off", "Trade notifications on or off; the daily equity chart", "/notify off"),
    ("reset", "<symbol> [exchange]", "Reset a tripped circuit breaker", "/reset BTC/USDT"),
    ("chart", "[symbol] [timeframe] [exchange]", "Candlestick chart with your trades", "/chart BTC/USDT 15m"),
    ("equity", "[symbol] [exchange]", "Equity curve vs buy-and-hold", "/equity"),
    ("trades", "[symbol] [n] [exchange]", "Your last round trips", "/trades BTC/USDT 5"),
    ("export", "[symbol] [exchange]", "CSV of every fill and round trip", "/export"),
    ("keyboard", "on|off", "Show or hide the command keyboard", "/keyboard off"),
    ("help", "", "Show help message", "/help"),
    ("why", "<symbol> [exchange]", "Why the pair's last decision (each AI member's vote)", "/why BTC/USDT"),
]
ADMIN_COMMANDS: list[tuple[str, str, str, str]] = [
    ("users", "[pending|active|blocked]", "List users", "/users pending"),
    ("approve", "<telegram_id|@username>", "Approve a user", "/approve 123456789"),
    ("block", "<telegram_id|@username>", "Block a user and stop their pairs", "/block @someone"),
    ("unblock", "<telegram_id|@username>", "Unblock a user", "/unblock @someone"),
    ("stopall", "", "Emergency: stop every pair of every user", "/stopall"),
    ("llm", "", "LLM calls, tokens, cost and errors per provider per day", "/llm"),
]
_ALL = {c[0]: c for c in COMMANDS + ADMIN_COMMANDS}


def usage(command: str, problem: str | None = None) -> str:
    name, args, _desc, example = _ALL[command]
    head = f"⚠️ {e(problem)}\n" if problem else ""
    return f"{head}Usage: <code>/{name}{(' ' + e(args)) if args else ''}</code>\nExample: <code>{e(example)}</code>"


def help_text(is_admin: bool = False, deciders=None) -> str:
    lines = ["🤖 <b>Commands</b>", "", "<b>Setup</b>"]
    groups = {
        "Setup": ["start", "connect", "addpair", "listpairs", "removepair"],
        "Trading": ["start_trading", "stop_trading", "set", "reset"],
        "Info": ["status", "config", "mystats", "position", "why", "notify", "help"],
        "Charts and history": ["chart", "equity", "trades", "export", "keyboard"],
    }
    lines = ["🤖 <b>Commands</b>"]
    for title, names in groups.items():
        lines += ["", f"<b>{title}</b>"]
        for n in names:
            _, args, desc, _ = _ALL[n]
            lines.append(f"/{n}{(' ' + e(args)) if args else ''} - {e(desc)}")
    if is_admin:
        lines += ["", "<b>Admin</b>"]
        for n, args, desc, _ in ADMIN_COMMANDS:
            lines.append(f"/{n}{(' ' + e(args)) if args else ''} - {e(desc)}")
    lines += [
        "",
        "Symbols can be written BTC/USDT, btcusdt or BTC-USDT.",
        "Futures (USDT-M perpetual, long and short): /addpair BTC/USDT 1000 futures — then /set BTC/USDT:USDT "
        "leverage 3, margin isolated|cross, direction both|long|short.",
        "Settings for /set: " + ", ".join([*SETTINGS, *TEXT_SETTINGS, "preset (a named set from the bot's config)"]),
    ]
    if deciders:
        from .ai import deciders_line

        lines.append(deciders_line(deciders))
    return "\n".join(lines)


def unknown_command() -> str:
    return "🤔 Unknown command. Send /help to see what I can do."


def not_a_command() -> str:
    return "I understand commands only. Send /help to see them."


def error(message: str) -> str:
    return f"⚠️ {e(message)}" if message[:1] not in ("⚠", "⛔", "⏳", "❌") else e(message)


def internal_error(ref: str) -> str:
    return f"😔 Sorry, something went wrong on our side. Reference: <code>{e(ref)}</code>"


def interrupted(command: str | None, sent_at: str) -> str:
    """A message whose handling was under way when the bot's server stopped (docs/HA_TELEGRAM.md): it is not
    run again, because part of it may have taken effect. Only the command word is quoted (never arguments:
    /connect carries secrets)."""
    what = f"your {e(command)} command" if command else "your message"
    return (f"⚠️ The bot restarted while it was handling {what} (sent {e(sent_at)} UTC), so it may or may "
            f"not have taken effect. Please check (e.g. /status, /listpairs) and send it again if needed.")


def rate_limited(seconds: int) -> str:
    return f"⏳ You are sending commands too fast. Please wait about {int(seconds)} s."
