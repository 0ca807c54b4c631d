"""The `pair_leases` table: one row per pair (`config_id`), holder worker, fencing token, and the last slot a
cycle ran for. A lease is live while its holder's `workers` row is (`workers.expires_at`): renewing a
worker's row renews every lease it holds, so a round writes ONE row however many pairs the worker runs
(until round 5 every lease row was rewritten each round: ~3,000 row writes a second at 10,000 pairs).
`pair_leases.expires_at` is no longer written (NULL; kept for older readers).

- renew(): renews the worker's row and returns, for each lease still ours, its token, whether the pair is
  still trading and its interval: a lease that is not returned was taken over (we lost it); a pair no
  longer trading was stopped from another worker's chat.
- claim(n): takes up to n leases of trading pairs that are free or whose holder's row expired (token + 1),
  skipping rows another worker is claiming at the same moment (FOR UPDATE SKIP LOCKED).
- begin_slot(): a cycle runs for a slot only if the lease is ours, live, and no holder ran that slot or
  a later one (the previous holder's last slot stays in the row across a takeover).
"""

from __future__ import annotations

from .sql import CLOCK, NOW, after, execute, ms


def add_missing() -> int:
    """A lease row (free) for every trading pair that has none yet."""
    cur = execute(
        "INSERT INTO pair_leases (config_id, token) SELECT c.id, 0 FROM user_configs c "
        "WHERE c.is_trading AND NOT EXISTS (SELECT 1 FROM pair_leases l WHERE l.config_id = c.id) "
        "ON CONFLICT (config_id) DO NOTHING"
    )
    return cur.rowcount


def add_one(config_id: int) -> None:
    execute("INSERT INTO pair_leases (config_id, token) VALUES (%s, 0) ON CONFLICT (config_id) DO NOTHING",
            (config_id,))


def renew(me: str, ttl: float, pairs_held: int, cycle_lag: int | None) -> tuple[bool, list[tuple]]:
    """(worker row renewed, [(config_id, token, is_trading, interval_seconds)] of the leases still ours)."""
    rows = execute(
        f"WITH w AS (UPDATE workers SET heartbeat_at = {NOW}, expires_at = {after()}, "
        "pairs_held = %s, cycle_lag_seconds = %s WHERE id = %s RETURNING id) "
        "SELECT 0, NULL::int, NULL::bigint, NULL::bool, NULL::int FROM w "
        "UNION ALL SELECT 1, p.config_id, p.token, c.is_trading, c.interval_seconds "
        "FROM pair_leases p JOIN user_configs c ON c.id = p.config_id WHERE p.worker = %s",
        (ms(ttl), pairs_held, cycle_lag, me, me),
    ).fetchall()
    alive = any(r[0] == 0 for r in rows)
    return alive, [r[1:] for r in rows if r[0] == 1]


# a lease is free when nobody holds it or its holder's row expired (killed, cut off, deleted)
_FREE = ("(p.worker IS NULL OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = p.worker "
         f"AND w.expires_at >= {NOW}))")


def claim(me: str, ttl: float, n: int) -> list[tuple[int, int, int, str | None, int | None]]:
    """Up to n free leases of trading pairs (nobody holds them, or their holder's row expired):
    [(config_id, token, interval_seconds, previous holder, last slot run)]."""
    if n <= 0:
        return []
    return execute(
        "WITH pick AS (SELECT p.config_id, p.worker AS prev FROM pair_leases p "
        "JOIN user_configs c ON c.id = p.config_id "
        f"WHERE c.is_trading AND {_FREE} "
        "ORDER BY p.config_id LIMIT %s FOR UPDATE OF p SKIP LOCKED) "
        f"UPDATE pair_leases l SET worker = %s, token = l.token + 1, acquired_at = {NOW}, expires_at = NULL "
        "FROM pick, user_configs c WHERE l.config_id = pick.config_id AND c.id = l.config_id "
        "RETURNING l.config_id, l.token, c.interval_seconds, pick.prev, l.last_slot_ms",
        (n, me),
    ).fetchall()


def release(me: str, config_ids) -> int:
    """Give leases up (the token stays: the next holder increments it; the last slot stays too)."""
    ids = list(config_ids)
    if not ids:
        return 0
    cur = execute(
        "UPDATE pair_leases SET worker = NULL, expires_at = NULL WHERE worker = %s AND config_id = ANY(%s)",
        (me, ids),
    )
    return cur.rowcount


def begin_slot(me: str, config_id: int, token: int, due_ms: int) -> bool:
    """Record that a cycle runs for slot `due_ms`; False (do not run) when the lease is not ours and live,
    or this slot or a later one already ran (under us or a previous holder)."""
    cur = execute(
        "UPDATE pair_leases p SET last_slot_ms = %s FROM workers w "
        "WHERE p.config_id = %s AND p.worker = %s AND p.token = %s AND w.id = p.worker "
        f"AND w.expires_at > {CLOCK} AND (p.last_slot_ms IS NULL OR p.last_slot_ms < %s)",
        (due_ms, config_id, me, token, due_ms),
    )
    return cur.rowcount == 1


def check_fence(me: str, config_id: int, token: int | None, margin: float) -> bool:
    """Inside the order intent's transaction: the lease row is locked (FOR UPDATE, so no takeover commits
    before the intent does) and must be ours, with this token, its holder's row valid for at least
    `margin` s more."""
    row = execute(
        f"SELECT p.worker, p.token, w.expires_at > {after(base=CLOCK)} FROM pair_leases p "
        "LEFT JOIN workers w ON w.id = p.worker WHERE p.config_id = %s FOR UPDATE OF p",
        (ms(margin), config_id),
    ).fetchone()
    return row is not None and token is not None and row[0] == me and row[1] == token and bool(row[2])


def set_pairs_held(me: str, n: int) -> None:
    execute("UPDATE workers SET pairs_held = %s WHERE id = %s", (n, me))


def holders() -> list[tuple]:
    """(worker, pairs held, its leases' expiry (= its row's), oldest acquisition) for status tools."""
    return execute(
        "SELECT p.worker, count(*), min(w.expires_at), max(w.expires_at), min(p.acquired_at) FROM pair_leases p "
        "JOIN workers w ON w.id = p.worker GROUP BY p.worker"
    ).fetchall()
