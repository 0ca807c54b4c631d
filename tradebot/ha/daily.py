"""Once per UTC day across all workers: the daily summary job asks `claim_daily(day)` first.

A row 'daily' in the instance_lock table carries the last day claimed (as an ordinal in `token`); the one
conditional UPDATE that moves it forward wins. The Telegram leader may replace this gate at merge time
(BotManager.daily_gate is any `(date) -> bool`)."""

from __future__ import annotations

import datetime as dt
import os
import socket

from .sql import NOW, execute


def claim_daily(day: dt.date) -> bool:
    host, pid = socket.gethostname()[:255], os.getpid()
    execute(
        "INSERT INTO instance_lock (name, host, pid, since, heartbeat_at, token) "
        f"VALUES ('daily', %s, %s, {NOW}, {NOW}, 0) ON CONFLICT (name) DO NOTHING",
        (host, pid),
    )
    cur = execute(
        f"UPDATE instance_lock SET token = %s, host = %s, pid = %s, heartbeat_at = {NOW} "
        "WHERE name = 'daily' AND token < %s",
        (day.toordinal(), host, pid, day.toordinal()),
    )
    return cur.rowcount == 1
