"""`tradebot status` on PostgreSQL with workers: who runs, how many pairs each holds, how fresh its
heartbeat and its leases are. Read-only (a read-only session, like health.read_status)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .. import db as dbmod


@dataclass
class WorkerRow:
    id: str
    host: str
    pid: int
    started_at: dt.datetime
    heartbeat_age: float
    expires_in: float
    stopped: bool
    gone_noticed: bool
    pairs: int  # leases held now
    oldest_lease: float | None  # seconds left on its soonest-expiring lease
    held_since: float | None  # seconds since its longest-held lease was claimed
    cycle_lag: int | None

    @property
    def live(self) -> bool:
        return not self.stopped and self.expires_in > 0


@dataclass
class Cluster:
    workers: list[WorkerRow] = field(default_factory=list)
    active_pairs: int = 0
    unheld: int = 0  # trading pairs with no live lease (between a worker's death and the takeover)

    @property
    def live(self) -> list[WorkerRow]:
        return [w for w in self.workers if w.live]


_SQL = """
SELECT w.id, w.host, w.pid, w.started_at,
       EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - w.heartbeat_at),
       EXTRACT(EPOCH FROM w.expires_at - (now() AT TIME ZONE 'UTC')),
       w.stopped_at IS NOT NULL, w.gone_noticed_at IS NOT NULL, count(l.config_id),
       CASE WHEN count(l.config_id) > 0 THEN EXTRACT(EPOCH FROM w.expires_at - (now() AT TIME ZONE 'UTC')) END,
       EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - min(l.acquired_at)), w.cycle_lag_seconds
FROM workers w LEFT JOIN pair_leases l ON l.worker = w.id
WHERE w.stopped_at IS NULL OR w.stopped_at > (now() AT TIME ZONE 'UTC') - interval '1 day'
GROUP BY w.id ORDER BY w.started_at
"""
_PAIRS = """
SELECT count(*), count(*) FILTER (WHERE w.id IS NULL OR w.expires_at < (now() AT TIME ZONE 'UTC'))
FROM user_configs c LEFT JOIN pair_leases l ON l.config_id = c.id LEFT JOIN workers w ON w.id = l.worker
WHERE c.is_trading
"""


def read_cluster(url: str) -> Cluster | None:
    """None on SQLite, or when no worker ever registered (an older schema included)."""
    parsed = dbmod.parse_url(url)
    if parsed.is_sqlite:
        return None
    import psycopg2

    with dbmod.readonly_pg_cursor(parsed) as cur:
        try:
            cur.execute(_SQL)
        except psycopg2.errors.UndefinedTable:
            return None
        rows = cur.fetchall()
        if not rows:
            return None
        cur.execute(_PAIRS)
        active, unheld = cur.fetchone()

    def f(v):
        return None if v is None else float(v)

    workers = [WorkerRow(r[0], r[1], r[2], r[3], f(r[4]), f(r[5]), bool(r[6]), bool(r[7]), int(r[8]), f(r[9]),
                         f(r[10]), r[11]) for r in rows]
    return Cluster(workers, int(active), int(unheld))


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{max(0, round(seconds))} s"


def format_cluster(c: Cluster) -> list[str]:
    live = c.live
    lines = [f"running:    {'yes' if live else 'no'}; {len(live)} live worker(s) on PostgreSQL, "
             f"{c.active_pairs} trading pairs" + (f", {c.unheld} waiting for a worker" if c.unheld else "")]
    lines.append(f"{'worker':<12} {'host':<20} {'pid':>7} {'pairs':>6} {'heartbeat':>10} {'leases left':>12} "
                 f"{'held for':>9} {'lag':>5}")
    for w in c.workers:
        state = "" if w.live else (" stopped" if w.stopped else " GONE")
        lines.append(
            f"{w.id.rsplit(':', 1)[-1]:<12} {w.host[:20]:<20} {w.pid:>7} {w.pairs:>6} {_age(w.heartbeat_age):>10} "
            f"{_age(w.oldest_lease):>12} {_age(w.held_since):>9} {('-' if w.cycle_lag is None else w.cycle_lag):>5}"
            f"{state}"
        )
    return lines
