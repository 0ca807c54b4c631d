"""Replies about access: registration, approval requests, user lists and the admin stop-all."""

from __future__ import annotations

from ...services import (
    UserView,
)
from .base import e

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


MAX_LISTED_USERS = 100  # one /users reply: ~2 Telegram messages, not one per 60 users of a big group


def users_list(users: list[UserView], status: str | None = None) -> str:
    if not users:
        return "No users." if status is None else f"No {e(status)} users."
    lines = [f"👥 <b>Users ({len(users)})</b>" if status is None else f"👥 <b>{e(status.capitalize())} users ({len(users)})</b>"]
    for u in users[:MAX_LISTED_USERS]:
        name = f"@{e(u.username)}" if u.username else e(u.first_name or "")
        admin = " 👑" if u.is_admin else ""
        lines.append(
            f"<code>{u.telegram_id}</code> {name}{admin} — {e(u.status)}, {u.pairs} pairs, {u.trading} trading"
        )
    if len(users) > MAX_LISTED_USERS:
        more = len(users) - MAX_LISTED_USERS
        narrow = "/users pending, /users active or /users blocked, or " if status is None else ""
        lines.append(f"… and {more} more (the first {MAX_LISTED_USERS} shown). For the rest: {narrow}"
                     "<code>tradebot admin users</code> on the server.")
    return "\n".join(lines)


def stop_all_confirm(n_running: int) -> str:
    return f"🛑 <b>Emergency stop</b>\nStop all {n_running} running pairs of every user?"


def stop_all_nothing() -> str:
    return "ℹ️ No pair of any user is trading: nothing to stop."


def stop_all_done(n: int) -> str:
    return f"🛑 Emergency stop done: {n} pairs stopped."
