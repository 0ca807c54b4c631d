"""The Telegram inbox (issue 17): updates are written to the database before they are handled.

Rules (docs/HA_TELEGRAM.md tells what they mean when a leader is killed):
- A batch from getUpdates is recorded in ONE transaction (INSERT ... ON CONFLICT DO NOTHING on update_id),
  and only then is the next getUpdates sent, whose offset confirms the batch to Telegram. So Telegram
  forgets an update only once the database holds it, and an update two leaders both fetched is taken by
  exactly one of them (the one whose insert went in).
- The next offset is the highest stored update_id + 1 (the offset lives in the database).
- A worker marks `started_at` before handling and `handled_at` after (the payload is then cleared: it
  may hold /connect secrets, and is encrypted meanwhile).
- A new leader first finishes what its predecessor left: rows never started are handled as usual; a row
  started but not finished is NOT handled again (its effects may have happened); its sender is told.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import peewee as pw

from .. import db as dbmod
from ..models import TelegramUpdate, utcnow

log = logging.getLogger("tradebot.telegram.inbox")

# After a week without updates Telegram may number the next one at random (possibly below our offset):
# then ask for "the earliest unconfirmed" instead of our stored offset.
OFFSET_MAX_AGE = dt.timedelta(days=6)
KEEP_HANDLED = dt.timedelta(days=2)  # handled rows kept this long (after that only the newest one)


def db_now(offset: int = 0):
    """'Now' (+ offset seconds) as naive UTC on the database's clock (PostgreSQL: leaders may run on
    several hosts, whose clocks need not agree); ours on SQLite."""
    if dbmod.is_sqlite():
        return utcnow() + dt.timedelta(seconds=offset)
    return pw.SQL(f"((now() AT TIME ZONE 'UTC') + interval '{int(offset)} seconds')")


def db_now_sql(offset: int = 0) -> tuple[str, list]:
    """db_now() for plain SQL statements: the SQL text and its parameters."""
    now = db_now(offset)
    return (now.sql, []) if isinstance(now, pw.SQL) else (dbmod.db.param, [str(now)])


def wanted(update: dict) -> bool:
    """Is this an update the bot answers (a text message or a button press from a person)?"""
    message = update.get("message")
    if message is not None:
        return isinstance(message.get("text"), str) and message.get("from") is not None
    call = update.get("callback_query")
    return call is not None and call.get("from") is not None


class Inbox:
    def __init__(self, vault, holder: str, fence=None):
        self.vault = vault
        self.holder = holder
        self.fence = fence  # () -> None, raises when this process is no longer the leader

    def offset(self) -> int | None:
        """The offset of the next getUpdates: the highest stored update_id + 1 (None: Telegram's default)."""
        row = (TelegramUpdate.select(TelegramUpdate.update_id, TelegramUpdate.received_at)
               .order_by(TelegramUpdate.update_id.desc()).first())
        if row is None or utcnow() - row.received_at > OFFSET_MAX_AGE:
            return None
        return row.update_id + 1

    def record(self, updates: list[dict], handled: list[int] | tuple = (), keep=None) -> set[int]:
        """Store a getUpdates batch in one transaction. Returns the ids this process is to handle: new and
        wanted (an unwanted update is stored as handled, so that the offset still moves past it).
        `handled`: unclaimed updates handled meanwhile, marked in the same transaction (see polling.py).
        `keep(update)`: store its text for a successor (False for strangers: only the id is stored)."""
        if not updates:
            if handled:
                self.done_many(handled)
            return set()
        now = utcnow()
        stamp = str(now) if dbmod.is_sqlite() else now  # peewee's own text form of a datetime on SQLite
        params: list = []
        for update in updates:
            take = wanted(update)
            text = self.vault.seal(json.dumps(update)) if take and (keep is None or keep(update)) else None
            params += [int(update["update_id"]), text, stamp, self.holder, None if take else stamp]
        # Plain SQL: peewee took ~0.1 ms per row to build this statement (a burst of 100 updates waited 10 ms).
        p = dbmod.db.param
        values = ", ".join([f"({p}, {p}, {p}, {p}, {p})"] * len(updates))
        sql = (f"INSERT INTO telegram_updates (update_id, payload, received_at, holder, handled_at) "
               f"VALUES {values} ON CONFLICT (update_id) DO NOTHING RETURNING update_id, handled_at")
        with dbmod.write_tx():
            if self.fence is not None:
                self.fence()
            rows = dbmod.db.execute_sql(sql, params).fetchall()
            if handled:
                self.done_many(handled)
        taken = {int(uid) for uid, handled in rows if handled is None}
        return taken

    # start/done run twice per chat message: plain SQL (peewee took more CPU building these UPDATEs than
    # SQLite took running them, a third of a reply's CPU).
    def start(self, update_id: int) -> bool:
        """Claim the update's handling. False: another leader took it over meanwhile (do not handle it)."""
        now, params = db_now_sql()
        p = dbmod.db.param
        cursor = dbmod.db.execute_sql(
            f"UPDATE telegram_updates SET started_at = {now} WHERE update_id = {p} AND holder = {p} "
            f"AND started_at IS NULL AND handled_at IS NULL", params + [update_id, self.holder])
        return cursor.rowcount == 1

    def done(self, update_id: int) -> None:
        self.done_many((update_id,))

    def done_many(self, update_ids) -> None:
        ids = [int(u) for u in update_ids]
        if not ids:
            return
        now, params = db_now_sql()
        p = dbmod.db.param
        dbmod.db.execute_sql(
            f"UPDATE telegram_updates SET handled_at = {now}, payload = NULL "
            f"WHERE update_id IN ({', '.join([p] * len(ids))})", params + ids)

    def unfinished(self) -> list[tuple[int, bool, dict | None]]:
        """Rows a dead leader left, oldest first, taken over by this one: (update_id, started, update)."""
        with dbmod.write_tx():
            rows = list(TelegramUpdate.select(TelegramUpdate.update_id, TelegramUpdate.started_at,
                                              TelegramUpdate.payload)
                        .where(TelegramUpdate.handled_at.is_null())
                        .order_by(TelegramUpdate.update_id).tuples())
            if rows:
                TelegramUpdate.update(holder=self.holder).where(
                    TelegramUpdate.update_id.in_([r[0] for r in rows])).execute()
        out = []
        for update_id, started_at, payload in rows:
            try:
                update = json.loads(self.vault.unseal(payload)) if payload else None
            except Exception:  # noqa: BLE001 - a key that changed meanwhile: nothing to answer
                log.warning("telegram update %s cannot be read back; skipped", update_id)
                update = None
            out.append((update_id, started_at is not None, update))
        return out

    def prune(self) -> int:
        """Forget handled rows older than KEEP_HANDLED (the newest row stays: it holds the offset)."""
        newest = TelegramUpdate.select(pw.fn.MAX(TelegramUpdate.update_id)).scalar()
        if newest is None:
            return 0
        return (TelegramUpdate.delete()
                .where(TelegramUpdate.handled_at.is_null(False)
                       & (TelegramUpdate.handled_at < utcnow() - KEEP_HANDLED)
                       & (TelegramUpdate.update_id < newest))
                .execute())
