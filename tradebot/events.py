"""Engine -> chat events, stored in the `notifications` outbox so none is lost on a crash."""

from __future__ import annotations

import json
from decimal import Decimal

from .models import Notification


def _default(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def emit(user_id: int, kind: str, payload: dict, config_id: int | None = None) -> Notification:
    return Notification.create(
        user=user_id, config=config_id, kind=kind, payload=json.dumps(payload, default=_default)
    )


def emit_to_admins(admin_ids, notices: list[tuple[str, dict]]) -> bool:
    """Queue each (kind, payload) for every admin (users with those Telegram ids) in one write
    transaction. Returns False when the database did not take it (the caller keeps the notices and tries
    again): the connection is closed so the next attempt opens a fresh one."""
    from . import db as dbmod
    from .models import User

    try:
        with dbmod.write_tx():
            admins = list(User.select(User.id).where(User.telegram_id.in_(list(admin_ids or []) or [-1])))
            for kind, payload in notices:
                for admin in admins:
                    emit(admin.id, kind, payload)
        return True
    except Exception:  # noqa: BLE001 - retried by the caller
        try:
            dbmod.db.close()
        except Exception:  # noqa: BLE001
            pass
        return False


def pending(limit: int = 100) -> list[Notification]:
    return list(
        Notification.select().where(Notification.sent_at.is_null()).order_by(Notification.id).limit(limit)
    )
