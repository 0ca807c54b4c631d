"""Engine event notifications (trades, breakers, errors, daily summary) and which always reach the user."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from .access import approved_notice
from .ai import llm_event
from .base import e, money, number, pnl, price

# ---------------------------------------------------------------- engine events


def _d(payload: dict, key: str) -> Decimal | None:
    value = payload.get(key)
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _when(value) -> str:
    """An ISO timestamp from an event payload as the user reads it elsewhere: '2026-01-01 12:00 UTC'."""
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _futures_event(kind: str, p: dict, where: str) -> str:
    """Futures notifications name the side and the leverage: "Opened SHORT BTC/USDT:USDT 3x"."""
    side = e(str(p.get("side") or "").upper())
    lev = f" {e(str(p.get('leverage')))}x" if p.get("leverage") else ""
    if kind == "funding":
        amount = _d(p, "amount") or Decimal(0)
        word = "received" if amount > 0 else "paid"
        return f"💸 Funding {money(amount)} USDT ({word}) on {side} {where}"
    if kind == "trade_opened":
        return (
            f"🟢 <b>Opened {side} {where}{lev}</b>\nAmount: {number(_d(p, 'amount'))} @ {price(_d(p, 'price'))}\n"
            f"Notional: {money(_d(p, 'cost'))} | Fee: {money(_d(p, 'fee'))}"
        )
    reason = p.get("reason") or "signal"
    pv = _d(p, "pnl") or Decimal(0)
    body = (f"Amount: {number(_d(p, 'amount'))} @ {price(_d(p, 'price'))}\n"
            f"PnL: {pnl(pv, _d(p, 'pnl_percent') or Decimal(0))}")
    if kind == "liquidation" or reason == "liquidation":
        return (f"🚨🚨 <b>LIQUIDATED: {side} {where}{lev}</b>\nThe price reached the liquidation price before the "
                f"stop-loss could act; the position's margin is lost.\n{body}\nCheck /status and lower the leverage.")
    head = {"stop_loss": "🛑 Stop-loss hit", "take_profit": "🎯 Take-profit hit"}.get(reason, "🔴 Closed")
    note = f"\n{e(str(p['note']))}" if p.get("note") else ""  # an outside close: where its numbers come from
    return f"{head}: <b>Closed {side} {where}{lev}</b>\n{body}{note}"


def event(kind: str, payload_json: str) -> str:
    """Text of one engine Notification (see docs/ARCHITECTURE.md, 'Engine events')."""
    try:
        p = json.loads(payload_json) if payload_json else {}
        if not isinstance(p, dict):
            p = {}
    except ValueError:
        p = {}
    ai = llm_event(kind, p)
    if ai is not None:
        return ai
    sym = e(p.get("symbol") or "")
    ex = e(p.get("exchange") or "")
    where = f"{sym} ({ex})" if ex else sym
    if p.get("side") and kind in ("trade_opened", "trade_closed", "funding", "liquidation"):
        return _futures_event(kind, p, where)
    if kind == "trade_opened":
        return (
            f"🟢 <b>Bought {where}</b>\nAmount: {number(_d(p, 'amount'))} @ {price(_d(p, 'price'))}\n"
            f"Cost: {money(_d(p, 'cost'))} | Fee: {money(_d(p, 'fee'))}"
        )
    if kind == "trade_closed":
        reason = p.get("reason") or "signal"
        head = {"stop_loss": "🛑 <b>Stop-loss hit", "take_profit": "🎯 <b>Take-profit hit"}.get(
            reason, "🔴 <b>Sold"
        )
        pv = _d(p, "pnl") or Decimal(0)
        return (
            f"{head}: {where}</b>\nAmount: {number(_d(p, 'amount'))} @ {price(_d(p, 'price'))}\n"
            f"PnL: {pnl(pv, _d(p, 'pnl_percent') or Decimal(0))}"
        )
    if kind == "breaker_tripped":
        scope = "all your pairs" if p.get("scope") == "user" else (sym or "a pair")
        until = e(_when(p.get("until")))
        reset = f"\nSend /reset {sym} to resume earlier." if sym else ""
        return f"⚡ <b>Circuit breaker tripped</b> for {scope}\nReason: {e(p.get('reason') or '')}\nPaused until {until}{reset}"
    if kind == "breaker_reset":
        return f"🔄 Circuit breaker reset for {sym or 'all your pairs'}."
    if kind == "pair_error":
        action = "\n👉 Action needed." if p.get("needs_action") else ""
        return f"⚠️ <b>Problem with {where or 'a pair'}</b>\n{e(p.get('message') or '')}{action}"
    if kind == "user_approved":
        if p.get("previous") == "blocked":  # /unblock, not a first approval
            return "✅ An admin unblocked you. Your pairs are stopped: /status, then /start_trading."
        return approved_notice()
    if kind == "lease_lost":  # to admins (instance_lock.py)
        return (
            "🚨 <b>Trading paused: this bot lost its hold on the database</b>\n"
            f"{e(p.get('reason') or '')}.\nNo orders are sent until it has it back; check that no other "
            "`tradebot run` uses this database (`tradebot status`)."
        )
    if kind == "worker_gone":  # to admins (ha/worker.py)
        return (
            f"🚨 <b>Worker {e(str(p.get('host') or '?'))} (pid {e(str(p.get('pid') or '?'))}) disappeared</b>\n"
            f"It stopped renewing its leases without a clean stop, holding {e(str(p.get('pairs') or 0))} pairs; "
            "they moved to the live workers. See `tradebot status`."
        )
    if kind == "lease_regained":
        return "✅ The bot holds the database again; trading resumed."
    if kind == "credentials_forgotten":
        names = ", ".join(e(str(x)) for x in (p.get("exchanges") or []) if isinstance(x, str)) or "your exchange"
        stopped = [e(str(x)) for x in (p.get("stopped") or []) if isinstance(x, str)]
        halted = f"\nStopped: {', '.join(stopped)}." if stopped else ""
        return (
            f"🔑 <b>Your API keys for {names} were removed</b> by the administrator (the bot's encryption key "
            f"was lost).{halted}\nSend /connect again, then /start_trading."
        )
    if kind == "daily_summary":
        lines = [f"📅 <b>Daily summary {e(p.get('day') or '')}</b>"]
        pairs = p.get("pairs") if isinstance(p.get("pairs"), list) else []
        for item in pairs:
            if isinstance(item, dict):
                lines.append(
                    f"{e(item.get('symbol') or '')}: equity {money(_d(item, 'equity'))}, "
                    f"PnL {money(_d(item, 'pnl') or Decimal(0))}, {e(item.get('trades') or 0)} trades"
                )
        lines.append(
            f"Total: equity {money(_d(p, 'total_equity'))}, PnL {money(_d(p, 'total_pnl') or Decimal(0))}"
        )
        return "\n".join(lines)
    return f"ℹ️ {e(kind)}: {where}"


ALWAYS_DELIVERED = {
    "lease_lost",
    "lease_regained",
    "worker_gone",
    "breaker_tripped",
    "pair_error",
    "user_approved",
    "credentials_forgotten",
    "llm_budget",
    "llm_provider_failing",
    "liquidation",
}  # delivered even with /notify off (need action)
