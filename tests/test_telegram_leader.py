"""TelegramLeader (issue 17): the front runs only while the 'telegram' lease is held; on SQLite always."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from tradebot import db as dbmod
from tradebot.telegram.leader import NotLeader, TelegramLeader


class StubFront:
    """What start_bot returns, as far as the leader uses it."""

    def __init__(self, log, name):
        self.log, self.name = log, name
        self.poller = type("P", (), {})()
        self.poller.stopping = threading.Event()
        log.append(("start", name))

    @property
    def running(self):
        return not self.poller.stopping.is_set()

    def stop(self):
        self.poller.stopping.set()
        self.log.append(("stop", self.name))


def _leader(url, name, log, ttl=3):
    return TelegramLeader(url, ttl, lambda holder, fence: StubFront(log, name))


def _wait(cond, timeout=15):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sqlite_is_always_the_leader(database, sqlite_url):
    log = []
    leader = _leader(sqlite_url, "only", log)
    leader.start()
    assert leader.is_leader and log == [("start", "only")]
    leader.fence()  # never refuses
    leader.stop()
    assert log[-1] == ("stop", "only")


@pytest.mark.pg
def test_one_front_at_a_time_handover_on_stop_and_takeover_after_expiry(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    log = []
    a = _leader(pg_url, "a", log)
    a.start()
    b = _leader(pg_url, "b", log)
    b.start()
    try:
        assert a.is_leader and not b.is_leader
        assert log == [("start", "a")]
        a.fence()
        with pytest.raises(NotLeader):
            b.fence()

        a.stop()  # a graceful stop releases: b takes over at its next beat (ttl/6 = 0.5 s)
        _wait(lambda: ("start", "b") in log)
        assert log == [("start", "a"), ("stop", "a"), ("start", "b")]

        # b stalls (its lease expires on the database clock); c takes over; b stops polling at once
        c = _leader(pg_url, "c", log)
        c.start()
        b.lease.stop_heartbeat()
        conn = psycopg2.connect(**dbmod.parse_url(pg_url).dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("UPDATE instance_lock SET expires_at = (now() AT TIME ZONE 'UTC') - interval '1 second' "
                        "WHERE name = 'telegram'")
        conn.close()
        _wait(lambda: ("start", "c") in log)
        front_b = b.front
        b.lease.beat()  # b wakes up: its renewal finds the row taken
        assert not b.is_leader and front_b.poller.stopping.is_set()
        with pytest.raises(NotLeader):
            b.fence()
        _wait(lambda: ("stop", "b") in log)
        assert [e for e in log if e[0] == "start"] == [("start", "a"), ("start", "b"), ("start", "c")]
        c.stop()
    finally:
        a.stop()
        b.stop()
        dbmod.close_database()
