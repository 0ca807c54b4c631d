"""User records by id or @name, admin-rights sync, approve/block/unblock: shared by the chat's admin commands
and the CLI (module functions, no Services object needed)."""

from __future__ import annotations

import peewee as pw

from .. import events
from ..ascii_digits import ascii_int
from ..db import write_tx
from ..models import User, UserConfig, utcnow
from .common import log
from .views import Ambiguous, Conflict, NotFound, UserView


def find_user(ref: int | str) -> User | None:
    """A user by Telegram id (int or digits) or username (with or without @). A username several users
    carry (a stale one: names are refreshed on every message) is refused with their ids (Ambiguous)."""
    if isinstance(ref, int) or ascii_int(ref) is not None:
        telegram_id = ref if isinstance(ref, int) else ascii_int(ref)
        if not 0 <= telegram_id < 2**63:  # the column is a signed 64-bit integer; no user has such an id
            return None
        return User.get_or_none(User.telegram_id == telegram_id)
    name = str(ref).lstrip("@")
    found = list(User.select().where(pw.fn.LOWER(User.username) == name.lower()).order_by(User.id).limit(10))
    if len(found) > 1:
        ids = ", ".join(str(u.telegram_id) for u in found)
        raise Ambiguous(f"@{name} matches several users (Telegram ids {ids}); use the Telegram id.")
    return found[0] if found else None


def sync_admins(admin_ids) -> int:
    """Admin rights come from telegram.admin_ids: users.is_admin is set and reset to match (at every
    start of `tradebot run`, and by admin CLI commands). Returns the number of users changed."""
    ids = sorted({int(i) for i in admin_ids or ()})
    with write_tx():
        demoted = User.update(is_admin=False, updated_at=utcnow()).where(
            (User.is_admin == True) & (User.telegram_id.not_in(ids or [-1]))  # noqa: E712
        ).execute()
        promoted = 0
        if ids:
            promoted = User.update(is_admin=True, updated_at=utcnow()).where(
                (User.is_admin == False) & (User.telegram_id.in_(ids))  # noqa: E712
            ).execute()
    if demoted or promoted:
        log.info("admin rights synced with telegram.admin_ids: %d granted, %d revoked", promoted, demoted)
    return demoted + promoted


def refresh_names(user: User, username: str | None, first_name: str | None) -> User:
    """Keep the stored @username and first name current (written only when they changed). Telegram
    usernames are unique at any moment, so another user still carrying this one has a stale copy."""
    username = (username or None) and username[:64]
    first_name = (first_name or None) and first_name[:128]
    if user.username == username and user.first_name == first_name:
        return user
    with write_tx():
        if username and (user.username or "").lower() != username.lower():
            User.update(username=None).where(
                (pw.fn.LOWER(User.username) == username.lower()) & (User.id != user.id)
            ).execute()
        User.update(username=username, first_name=first_name, updated_at=utcnow()).where(
            User.id == user.id
        ).execute()
    user.username, user.first_name = username, first_name
    return user


def _need_user(ref: int | str) -> User:
    user = find_user(ref)
    if user is None:
        raise NotFound(f"No user {ref}.")
    return user


def list_users(status: str | None = None) -> list[UserView]:
    """Every user (or those with `status`) with their pair counts, in the order they registered: one
    query (it was two per user: seconds of a chat thread's CPU with thousands of users)."""
    trading = pw.fn.SUM(pw.Case(None, [(UserConfig.is_trading, 1)], 0))
    query = (
        User.select(User.telegram_id, User.username, User.first_name, User.status, User.is_admin,
                    pw.fn.COUNT(UserConfig.id).alias("n_pairs"), trading.alias("n_trading"))
        .join(UserConfig, pw.JOIN.LEFT_OUTER, on=(UserConfig.user == User.id))
        .group_by(User.id, User.telegram_id, User.username, User.first_name, User.status, User.is_admin)
        .order_by(User.id)
    )
    if status:
        query = query.where(User.status == status)
    return [
        UserView(telegram_id=tid, username=username, first_name=first, status=st, is_admin=bool(admin),
                 pairs=int(n or 0), trading=int(t or 0))
        for tid, username, first, st, admin, n, t in query.tuples()
    ]


def approve_user(ref: int | str) -> User:
    """Pending or blocked -> active. Returns the user."""
    user = _need_user(ref)
    with write_tx():
        User.update(status="active", updated_at=utcnow()).where(User.id == user.id).execute()
        if user.status != "active":
            # Through the outbox, so an approval from the CLI reaches the user's chat too.
            events.emit(user.id, "user_approved", {"previous": user.status})
    return User.get_by_id(user.id)


def reject_user(ref: int | str, manager=None) -> User:
    """An approval request is declined: the user is blocked."""
    return block_user(ref, manager)


def block_user(ref: int | str, manager=None) -> User:
    """Blocks a user and stops every pair of theirs. Admins cannot be blocked."""
    user = _need_user(ref)
    if user.is_admin:
        raise Conflict("Admins cannot be blocked.")
    if manager is not None:
        manager.stop_user(user.id)
    with write_tx():
        User.update(status="blocked", updated_at=utcnow()).where(User.id == user.id).execute()
        UserConfig.update(is_trading=False, updated_at=utcnow()).where(UserConfig.user == user.id).execute()
    return User.get_by_id(user.id)


def unblock_user(ref: int | str) -> User:
    return approve_user(ref)
