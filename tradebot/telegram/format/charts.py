"""Texts of /chart, /equity, /trades, /export, the pick lists and the chat preferences (/keyboard,
/notify chart)."""

from __future__ import annotations

from ...services import RoundTripView
from .base import e, money, number, percent, price

PICK_PROMPTS = {
    "chart": "📈 Which pair do you want a chart of?",
    "position": "📍 Which pair's position?",
    "removepair": "🗑️ Which pair do you want to remove?",
    "stop_trading": "⏸️ Which pair do you want to stop?",
    "equity": "📈 Whose equity curve?",
}


def pick_prompt(command: str) -> str:
    return PICK_PROMPTS.get(command, "Which pair?")


def chart_caption(caption: str) -> str:
    return e(caption)


def chart_working() -> str:
    return "⏳ Drawing the chart…"


def trades(views: list[RoundTripView], n: int) -> str:
    if not views:
        return "📭 No closed trades yet."
    show_exchange = len({v.exchange for v in views}) > 1
    lines = [f"🧾 <b>Last {len(views)} round trip{'s' if len(views) != 1 else ''}</b> (newest first)"]
    for v in views:
        where = f" ({e(v.exchange)})" if show_exchange else ""
        side = " SHORT" if v.side == "short" else ""
        opened = f"{v.opened_at:%m-%d %H:%M}"
        closed = f"{v.closed_at:%m-%d %H:%M}" if v.closed_at else "—"
        reason = e((v.reason or "signal").replace("_", "-"))
        lines += [
            "",
            f"<b>{e(v.symbol)}</b>{where}{side} · {opened} → {closed} UTC",
            f"{number(v.amount)} @ {price(v.entry_price)} → {price(v.exit_price)} ({reason})",
            f"PnL {money(v.pnl)} ({percent(v.pnl_percent)}) · fees {money(v.fees)}",
        ]
    if len(views) >= n:
        lines += ["", "Older trades: /export"]
    return "\n".join(lines)


def export_caption(filename: str) -> str:
    return f"📄 {e(filename)}: every fill and round trip (fees in quote currency, UTC times)."


def keyboard_set(on: bool) -> str:
    return "⌨️ Command keyboard on." if on else "⌨️ Command keyboard off. /keyboard on brings it back."


def notify_chart_set(on: bool) -> str:
    return ("📈 The daily summary now carries your equity chart." if on
            else "📈 The daily summary comes without a chart.")


def charts_refreshed() -> str:
    return "Refreshed"
