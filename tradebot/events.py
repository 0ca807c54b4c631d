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


def pending(limit: int = 100) -> list[Notification]:
    return list(
        Notification.select().where(Notification.sent_at.is_null()).order_by(Notification.id).limit(limit)
    )
