"""WAL checkpoints run on a thread of their own (tradebot/wal_checkpoint.py), so no commit of a trading
cycle copies the log into the database file while the other writers wait behind it."""

from __future__ import annotations

import os
import time

from tradebot import db as dbmod
from tradebot.wal_checkpoint import WalCheckpointer


def test_the_log_is_checkpointed_aside_and_commits_no_longer_do_it(database, sqlite_url):
    assert database.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 10000
    database.execute_sql("CREATE TABLE scratch (x BLOB)")
    wal = dbmod.parse_url(sqlite_url).path + "-wal"
    checkpointer = WalCheckpointer(interval=0.02).start()
    try:
        for _ in range(60):  # 6 MB in all: past the default 1,000-page autocheckpoint more than once
            with dbmod.write_tx():
                database.execute_sql("INSERT INTO scratch VALUES (?)", (os.urandom(100_000),))
            passes, deadline = checkpointer.passes, time.monotonic() + 10
            while checkpointer.passes < passes + 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert checkpointer.passes >= passes + 2, "no checkpoint pass"
    finally:
        checkpointer.stop()
    # every pass copied the whole log, so each writer started it over: it never grew past ~1 transaction
    assert os.path.getsize(wal) < 1_000_000
    assert database.execute_sql("SELECT COUNT(*) FROM scratch").fetchone()[0] == 60
