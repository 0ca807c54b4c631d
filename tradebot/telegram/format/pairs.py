"""Replies about exchange connections, pairs, their status and trading on/off."""

from __future__ import annotations

import re
from decimal import Decimal

from ...services import (
    ConnectResult,
    PairView,
    PositionView,
    StartResult,
    StopResult,
)
from .base import e, money, number, pnl

# ---------------------------------------------------------------- connect / pairs


def connected(result: ConnectResult, deleted: bool) -> str:
    lines = ["✅ Exchange Connected", f"Exchange: {e(result.exchange)} ({e(result.network)})"]
    if result.api_key_masked:
        lines.append(f"API key: <code>{e(result.api_key_masked)}</code>")
    if result.network == "paper":
        lines.append("Paper trading: simulated orders on real prices, no keys needed.")
    if deleted:
        lines.append("🔒 I deleted your message with the keys.")
    elif result.api_key_masked:
        lines.append("⚠️ I could not delete your message with the keys: please delete it yourself.")
    return "\n".join(lines)


def connect_in_group(deleted: bool) -> str:
    tail = " I deleted the message." if deleted else " Delete that message now."
    return "🔒 Never send API keys in a group. Message me directly (private chat) to /connect." + tail


def pair_added(view: PairView, shortfall: tuple[str, Decimal, Decimal] | None = None) -> str:
    text = (
        f"✅ Trading Pair Added\nSymbol: {e(view.symbol)}\nExchange: {e(view.exchange)}\n"
        f"Balance: {money(view.budget)}"
    )
    if view.market_type == "futures":
        text += (
            f"\nMarket: USDT-M perpetual futures, {view.leverage}x, {e(view.margin_mode)} margin, "
            f"direction {e(view.direction)}\nChange with /set {e(view.symbol)} leverage|margin|direction"
        )
    if shortfall:
        asset, free, needed = shortfall
        text += (
            f"\n⚠️ Your {e(view.exchange)} account has only {number(free)} {e(asset)} free, but your "
            f"{e(view.exchange)} pairs may spend up to {number(needed)} {e(asset)}: orders above the free "
            "balance will fail. Deposit more or lower the balance (/removepair, then /addpair)."
        )
    return text


def status_icon(view: PairView) -> str:
    return {
        "running": "🟢 Running",
        "stopped": "🔴 Stopped",
        "paused": "⏸️ Paused (circuit breaker)",
        "error": "⚠️ Error",
    }.get(view.status, "🔴 Stopped")


def futures_tag(view: PairView) -> str:
    """' [futures 3x SHORT]' for a futures pair, '' for spot."""
    if view.market_type != "futures":
        return ""
    return f" [futures {view.leverage}x {e(view.side.upper())}]"


def _pair_title(i: int, view: PairView, show_exchange: bool) -> str:
    ex = f" ({e(view.exchange)})" if show_exchange else ""
    return f"{i}. {e(view.symbol)}{ex}{futures_tag(view)} {status_icon(view)}"


def _show_exchange(views: list[PairView]) -> bool:
    return len({v.exchange for v in views}) > 1


def list_pairs(views: list[PairView]) -> str:
    if not views:
        return "📭 You have no pairs yet. Add one: /addpair BTC/USDT 1000"
    show = _show_exchange(views)
    lines = [f"📊 Your Trading Pairs ({len(views)})"]
    for i, v in enumerate(views, 1):
        lines.append(_pair_title(i, v, show))
        lines.append(f"   Balance: {money(v.budget)}")
    return "\n".join(lines)


def status(views: list[PairView], single: bool | None = None) -> str:
    if not views:
        return "📭 You have no pairs yet. Add one: /addpair BTC/USDT 1000"
    show = _show_exchange(views)
    detailed = len(views) == 1 if single is None else single
    lines = [f"📊 Your Trading Pairs ({len(views)})"]
    for i, v in enumerate(views, 1):
        lines.append(_pair_title(i, v, show))
        if detailed:
            lines.append(f"   Balance: {money(v.budget)} → Equity: {money(v.equity)}")
            lines.append(f"   PnL: {pnl(v.pnl, v.pnl_percent)}")
            if v.market_type == "futures":
                lines.append(f"   Margin: {e(v.margin_mode)} | Direction: {e(v.direction)} | "
                             f"Funding paid: {money(v.funding_paid)}")
        else:
            lines.append(f"   Equity: {money(v.equity)} | PnL: {pnl(v.pnl, v.pnl_percent)}")
        if v.status == "paused" and v.breaker_until is not None:
            # the engine stores "<kind>: <detail>"; the kind is a code word, not for the user
            shown = re.sub(r"^[a-z_]+: ", "", v.breaker_reason or "")
            reason = f" ({e(shown)})" if shown else ""
            lines.append(
                f"   Breaker until {v.breaker_until:%Y-%m-%d %H:%M} UTC{reason} — /reset {e(v.symbol)}"
            )
        if v.status == "error" and v.last_error:
            lines.append(f"   Last error: {e(v.last_error[:200])}")
    return "\n".join(lines)


def removal_confirm(symbol: str, exchange: str, held: list[PositionView] | None = None) -> str:
    text = f"❓ Remove {e(symbol)} ({e(exchange)})? Its trade history is kept."
    if held:
        amount = sum((p.amount for p in held), Decimal(0))
        base = e(symbol.split("/")[0])
        text += (
            f"\n⚠️ It still holds an open position ({number(amount)} {base}): after removal the bot no longer "
            "manages or sells it."
        )
    return text


def removed(symbol: str) -> str:
    return f"🗑️ Trading Pair Removed: {e(symbol)}"


def cancelled() -> str:
    return "Cancelled."


def started(result: StartResult) -> str:
    lines = []
    if len(result.started) == 1:
        lines.append(f"🚀 Trading Started: {e(result.started[0])}")
    elif result.started:
        lines.append(f"🚀 Trading Started\n{len(result.started)} pairs now trading.")
    if result.already:
        lines.append(f"ℹ️ Already trading: {e(', '.join(result.already))}")
    for symbol, reason in result.failed:
        lines.append(f"❌ {e(symbol)} did not start: {e(reason)}")
    return "\n".join(lines) or "Nothing to start."


def stopped(result: StopResult) -> str:
    lines = []
    if len(result.stopped) == 1:
        lines.append(f"⏸️ Trading Stopped: {e(result.stopped[0])}")
    elif result.stopped:
        lines.append(f"⏸️ Trading Stopped\n{len(result.stopped)} pairs stopped.")
    if result.already and not result.stopped:
        if len(result.already) == 1:
            lines.append(f"ℹ️ {e(result.already[0])} is not trading.")
        else:
            lines.append("ℹ️ None of your pairs is trading.")
    return "\n".join(lines) or "ℹ️ None of your pairs is trading."


def stop_all_mine_confirm(symbols: list[str]) -> str:
    return f"❓ Stop trading all {len(symbols)} running pairs ({e(', '.join(symbols))})?"


def nothing_running() -> str:
    return "ℹ️ None of your pairs is trading."


def breaker_reset(symbol: str) -> str:
    return f"🔄 Circuit breaker reset: {e(symbol)}. Trading resumes on the next cycle."


def notify_set(on: bool) -> str:
    return (
        "🔔 Notifications on."
        if on
        else "🔕 Notifications off. (Circuit breaker and errors needing action still reach you.)"
    )
