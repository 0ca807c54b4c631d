"""Reply texts: pure functions from plain data to Telegram HTML (parse_mode="HTML").

Every value that may come from a user or an exchange goes through `e()` (telebot.formatting.escape_html).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from telebot.formatting import escape_html

from ..services import (
    SETTINGS,
    TEXT_SETTINGS,
    ConfigView,
    ConnectResult,
    PairView,
    PositionView,
    SettingChange,
    StartResult,
    StatsView,
    StopResult,
    TradeStats,
    UserView,
)

CENT = Decimal("0.01")


def e(value) -> str:
    return escape_html("" if value is None else str(value))


def money(value: Decimal | None) -> str:
    """$1000.00, -$20.00."""
    if value is None:
        return "—"
    value = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):.2f}"


def percent(value: Decimal | None) -> str:
    if value is None:
        return "—"
    value = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    if value == 0:
        value = abs(value)
    return f"{value:.2f}%"


def number(value: Decimal | None) -> str:
    """Amounts and prices: plain notation, no trailing zeros."""
    if value is None:
        return "—"
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def price(value: Decimal | None) -> str:
    if value is None:
        return "—"
    value = Decimal(value)
    if abs(value) >= 1:
        return number(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    return number(value)


def pnl(value: Decimal, pct: Decimal) -> str:
    """$50.00 (5.00%) / -$20.00 (-4.00%)."""
    return f"{money(value)} ({percent(pct)})"


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
    ("notify", "on|off", "Turn trade notifications on or off", "/notify off"),
    ("reset", "<symbol> [exchange]", "Reset a tripped circuit breaker", "/reset BTC/USDT"),
    ("help", "", "Show help message", "/help"),
]
ADMIN_COMMANDS: list[tuple[str, str, str, str]] = [
    ("users", "[pending|active|blocked]", "List users", "/users pending"),
    ("approve", "<telegram_id|@username>", "Approve a user", "/approve 123456789"),
    ("block", "<telegram_id|@username>", "Block a user and stop their pairs", "/block @someone"),
    ("unblock", "<telegram_id|@username>", "Unblock a user", "/unblock @someone"),
    ("stopall", "", "Emergency: stop every pair of every user", "/stopall"),
]
_ALL = {c[0]: c for c in COMMANDS + ADMIN_COMMANDS}


def usage(command: str, problem: str | None = None) -> str:
    name, args, _desc, example = _ALL[command]
    head = f"⚠️ {e(problem)}\n" if problem else ""
    return f"{head}Usage: <code>/{name}{(' ' + e(args)) if args else ''}</code>\nExample: <code>{e(example)}</code>"


def help_text(is_admin: bool = False) -> str:
    lines = ["🤖 <b>Commands</b>", "", "<b>Setup</b>"]
    groups = {
        "Setup": ["start", "connect", "addpair", "listpairs", "removepair"],
        "Trading": ["start_trading", "stop_trading", "set", "reset"],
        "Info": ["status", "config", "mystats", "position", "notify", "help"],
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
        "Settings for /set: " + ", ".join([*SETTINGS, *TEXT_SETTINGS]),
    ]
    return "\n".join(lines)


def unknown_command() -> str:
    return "🤔 Unknown command. Send /help to see what I can do."


def not_a_command() -> str:
    return "I understand commands only. Send /help to see them."


def error(message: str) -> str:
    return f"⚠️ {e(message)}" if message[:1] not in ("⚠", "⛔", "⏳", "❌") else e(message)


def internal_error(ref: str) -> str:
    return f"😔 Sorry, something went wrong on our side. Reference: <code>{e(ref)}</code>"


def rate_limited(seconds: int) -> str:
    return f"⏳ You are sending commands too fast. Please wait about {int(seconds)} s."


# ---------------------------------------------------------------- users


def welcome(created: bool, name: str | None) -> str:
    if created:
        return "👋 Welcome! You've been registered.\nNext: /connect an exchange, then /addpair. Send /help for all commands."
    return f"👋 Welcome back{', ' + e(name) if name else ''}! Send /help for the commands."


def pending_registration() -> str:
    return "⏳ Thanks! Your registration is waiting for an admin's approval. I'll message you when it's done."


def refused_registration() -> str:
    return "⛔ This bot is private."


def admin_approval_request(user_id: int, username: str | None, first_name: str | None) -> str:
    who = e(first_name or "") + (f" (@{e(username)})" if username else "")
    return f"🆕 <b>Approval request</b>\n{who.strip() or 'A user'} — id <code>{int(user_id)}</code>"


def approved_notice() -> str:
    return "✅ You've been approved! Send /help to get started."


def user_status_changed(user_id: int, username: str | None, status: str) -> str:
    who = f"@{e(username)}" if username else f"<code>{int(user_id)}</code>"
    icon = {"active": "✅", "blocked": "⛔", "pending": "⏳"}.get(status, "")
    return f"{icon} User {who} is now {e(status)}."


def users_list(users: list[UserView]) -> str:
    if not users:
        return "No users."
    lines = [f"👥 <b>Users ({len(users)})</b>"]
    for u in users:
        name = f"@{e(u.username)}" if u.username else e(u.first_name or "")
        admin = " 👑" if u.is_admin else ""
        lines.append(
            f"<code>{u.telegram_id}</code> {name}{admin} — {e(u.status)}, {u.pairs} pairs, {u.trading} trading"
        )
    return "\n".join(lines)


def stop_all_confirm(n_running: int) -> str:
    return f"🛑 <b>Emergency stop</b>\nStop all {n_running} running pairs of every user?"


def stop_all_nothing() -> str:
    return "ℹ️ No pair of any user is trading: nothing to stop."


def stop_all_done(n: int) -> str:
    return f"🛑 Emergency stop done: {n} pairs stopped."


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


def _pair_title(i: int, view: PairView, show_exchange: bool) -> str:
    ex = f" ({e(view.exchange)})" if show_exchange else ""
    return f"{i}. {e(view.symbol)}{ex} {status_icon(view)}"


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


def setting_changed(change: SettingChange) -> str:
    return (
        f"⚙️ {e(change.symbol)} ({e(change.exchange)}): {e(change.setting)} "
        f"{e(_setting_value(change.setting, change.old))} → {e(_setting_value(change.setting, change.new))}"
    )


def _setting_value(name: str, value) -> str:
    spec = SETTINGS.get(name)
    if isinstance(value, Decimal):
        text = number(value)
    else:
        text = str(value)
    if spec and spec[1] == "percent":
        return text + "%"
    if name == "cooldown":
        return text + " min"
    return text


def config(view: ConfigView) -> str:
    lines = ["⚙️ <b>Configuration</b>"]
    if view.credentials:
        lines.append("Exchanges:")
        for c in view.credentials:
            key = f", key <code>{e(c.api_key_masked)}</code>" if c.api_key_masked else ""
            lines.append(f"• {e(c.exchange)} ({e(c.network)}){key}")
    else:
        lines.append(
            "No exchange connected: /connect binance <api_key> <secret> true — or /connect binance paper".replace(
                "<", "&lt;"
            ).replace(">", "&gt;")
        )
    lines.append(f"Notifications: {'on' if view.notify else 'off'}")
    for pc in view.pairs:
        p = pc.pair
        s = pc.settings
        lines += [
            "",
            f"<b>{e(p.symbol)}</b> ({e(p.exchange)}, {e(p.network)}) {status_icon(p)}",
            f"Balance: {money(p.budget)}",
            f"Strategy: {e(s['decider'])}, {e(s['timeframe'])} candles, every {int(s['interval_seconds'])} s",
        ]
        for name in SETTINGS:
            lines.append(f"{name}: {e(_setting_value(name, s[name]))}")
    if not view.pairs:
        lines += ["", "No pairs yet: /addpair BTC/USDT 1000"]
    return "\n".join(lines)


def _stats_block(s: TradeStats) -> list[str]:
    rate = percent(s.win_rate) if s.win_rate is not None else "—"
    lines = [
        f"<b>{e(s.label)}</b>",
        f"Trades: {s.fills} fills, {s.closed} closed ({s.wins} won, {s.losses} lost)",
        f"Win rate: {rate}",
        f"Realized PnL: {money(s.realized_pnl)}",
    ]
    if s.closed:
        lines.append(f"Best: {money(s.best)} | Worst: {money(s.worst)}")
    lines.append(f"Fees: {money(s.fees)}")
    return lines


def stats(view: StatsView) -> str:
    lines = ["📈 <b>Your Trading Statistics</b>"]
    for s in view.pairs:
        lines += [""] + _stats_block(s)
    lines += [""] + _stats_block(view.total)
    return "\n".join(lines)


def positions(views: list[PositionView]) -> str:
    if not views:
        return "📭 No open positions."
    lines = [f"📍 <b>Open Positions ({len(views)})</b>"]
    for p in views:
        lines += [
            "",
            f"<b>{e(p.symbol)}</b> ({e(p.exchange)}) LONG",
            f"Amount: {number(p.amount)} @ {price(p.entry_price)}",
            f"Cost: {money(p.cost_basis)} | Last: {price(p.last_price)}",
        ]
        if p.unrealized_pnl is not None:
            lines.append(f"Unrealized PnL: {pnl(p.unrealized_pnl, p.unrealized_percent)}")
        lines.append(f"Stop-loss: {price(p.stop_loss_price)} | Take-profit: {price(p.take_profit_price)}")
    return "\n".join(lines)


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


def event(kind: str, payload_json: str) -> str:
    """Text of one engine Notification (see docs/ARCHITECTURE.md, 'Engine events')."""
    try:
        p = json.loads(payload_json) if payload_json else {}
        if not isinstance(p, dict):
            p = {}
    except ValueError:
        p = {}
    sym = e(p.get("symbol") or "")
    ex = e(p.get("exchange") or "")
    where = f"{sym} ({ex})" if ex else sym
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
    if kind == "lease_regained":
        return "✅ The bot holds the database again; trading resumed."
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
    "breaker_tripped",
    "pair_error",
    "user_approved",
}  # delivered even with /notify off (need action)
