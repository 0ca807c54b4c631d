"""The `workers` table: who is running. A worker registers at start, its row is renewed every round
(leases.renew; its pair leases are live while it is), and a clean stop marks it stopped. A worker whose
row expired without a stop disappeared (killed, host down, cut off): the first live worker to notice tells
the admins, once."""

from __future__ import annotations

import os
import secrets
import socket

from .sql import NOW, after, execute, ms


def worker_id() -> str:
    """"<host>:<pid>:<random>" (at most 64 characters)."""
    host = socket.gethostname()[:40]
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def register(me: str, ttl: float) -> None:
    execute(
        "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, expires_at, pairs_held) "
        f"VALUES (%s, %s, %s, {NOW}, {NOW}, {after()}, 0)",
        (me, socket.gethostname()[:255], os.getpid(), ms(ttl)),
    )


def single_instance_holder() -> str | None:
    """'host H, pid P' when a live single-instance lease ('run': an older `tradebot run`, or
    `tradebot admin rotate-key`) holds the database; workers must not start beside it."""
    row = execute(
        f"SELECT host, pid FROM instance_lock WHERE name = 'run' AND holder IS NOT NULL AND expires_at > {NOW}"
    ).fetchone()
    return None if row is None else f"host {row[0]}, pid {row[1]}"


def live_workers() -> int:
    return int(execute(
        f"SELECT count(*) FROM workers WHERE stopped_at IS NULL AND expires_at > {NOW}"
    ).fetchone()[0])


def mark_stopped(me: str) -> None:
    execute(f"UPDATE workers SET stopped_at = {NOW}, pairs_held = 0 WHERE id = %s", (me,))


def claim_gone(me: str, grace: float) -> list[tuple[str, str, int, int]]:
    """Workers that stopped renewing `grace` s ago without a clean stop and nobody reported yet, marked
    reported in the same statement (so only one live worker reports each): (id, host, pid, pairs held)."""
    return execute(
        f"UPDATE workers SET gone_noticed_at = {NOW} "
        f"WHERE stopped_at IS NULL AND gone_noticed_at IS NULL AND id <> %s AND expires_at < {NOW} - "
        "%s * interval '1 millisecond' RETURNING id, host, pid, pairs_held",
        (me, ms(grace)),
    ).fetchall()


def forget_old(days: int = 7) -> int:
    """Rows of workers gone or stopped more than `days` ago (a restart registers a new id each time)."""
    cur = execute(f"DELETE FROM workers WHERE expires_at < {NOW} - %s * interval '1 day'", (days,))
    return cur.rowcount
