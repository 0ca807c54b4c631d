"""The instance lease (issue 10.2, 10.10): one `tradebot run` per database, fenced orders, inode locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg2
import pytest

from tests.fixtures_engine import (
    MINUTE,
    REAL_START,
    ScriptedDecider,
    StubVault,
    flat_series,
    make_pair,
    make_user,
)
from tradebot import db as dbmod
from tradebot import instance_lock
from tradebot.engine.manager import BotManager
from tradebot.instance_lock import InstanceLease, InstanceLocked, LeaseLost
from tradebot.models import InstanceLock, Notification, Order, User

HOLD = """
import sys, time
from tradebot import db
from tradebot.instance_lock import InstanceLease
db.open_database(sys.argv[1]); db.migrate()
lease = InstanceLease(sys.argv[1])
lease.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _holder(url):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _expire(url):
    """Age the lease as a long stall (or a cut-off network) would, on the database's own clock."""
    conn = psycopg2.connect(**dbmod.parse_url(url).dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("UPDATE instance_lock SET expires_at = (now() AT TIME ZONE 'UTC') - interval '1 second'")
    conn.close()


def _kill_backends(url):
    """Terminate every other connection to the database (what a PostgreSQL restart does)."""
    conn = psycopg2.connect(**dbmod.parse_url(url).dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        killed = cur.fetchone()[0]
    conn.close()
    return killed


# ---------------------------------------------------------------- SQLite: the lock is on the inode


@pytest.mark.parametrize("how", ["symlink", "hardlink", "lockfile deleted"])
def test_sqlite_lock_covers_every_name_of_the_database(tmp_path, how):
    db_file = tmp_path / "tradebot.db"
    url = f"sqlite:///{db_file}"
    holder = _holder(url)
    try:
        other = tmp_path / "other" / "alias.db"
        other.parent.mkdir()
        if how == "symlink":
            other.symlink_to(db_file)
        elif how == "hardlink":
            os.link(db_file, other)
        else:
            for stray in tmp_path.glob("*.lock"):
                stray.unlink()
            other = db_file
        assert not list(tmp_path.glob("*.lock")), "no sibling lock file is needed"
        dbmod.open_database(f"sqlite:///{other}")
        with pytest.raises(InstanceLocked) as info:
            InstanceLease(f"sqlite:///{other}").acquire()
        assert "already running" in str(info.value)
        if how != "hardlink":  # (through a hard link SQLite looks for another -wal file: no holder row)
            assert f"pid {holder.pid}" in str(info.value)
    finally:
        holder.kill()
        holder.wait(10)
        dbmod.close_database()


def test_sqlite_takeover_after_the_holder_dies_bumps_the_token(sqlite_url):
    holder = _holder(sqlite_url)
    dbmod.open_database(sqlite_url)
    try:
        first = InstanceLock.get_by_id("run").token
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        lease = InstanceLease(sqlite_url)
        lease.acquire()  # the kernel dropped the flock: at once, no waiting for the lease to expire
        assert lease.token == first + 1
        lease.release()
        assert InstanceLock.get_by_id("run").holder is None
    finally:
        holder.kill()
        dbmod.close_database()


# ---------------------------------------------------------------- PostgreSQL: the lease


@pytest.fixture
def pg(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    yield pg_url
    instance_lock._active = None
    dbmod.close_database()


@pytest.mark.pg
def test_second_instance_refused_while_the_lease_lives_and_takes_it_after_expiry(pg):
    first = InstanceLease(pg, ttl=3)
    first.acquire()
    second = InstanceLease(pg, ttl=3)
    with pytest.raises(InstanceLocked):
        second.acquire()
    # Killing the first's connections is not a loss: the lease lives on in the row, and still refuses.
    assert _kill_backends(pg) >= 1
    dbmod.close_database()
    with pytest.raises(InstanceLocked):
        second.acquire()
    _expire(pg)
    second.acquire()
    assert second.token == first.token + 1
    with pytest.raises(LeaseLost):
        first.check()  # the stale token is refused
    second.check()
    assert not first.renew(), "the first instance cannot renew a lease taken over"
    second.release()


@pytest.mark.pg
def test_heartbeat_survives_killed_connections_and_keeps_the_lease(pg):
    first = InstanceLease(pg, ttl=3)
    first.acquire(fencing=True)
    first.start_heartbeat()
    try:
        for _ in range(3):
            _kill_backends(pg)
            time.sleep(1.2)
        time.sleep(3)  # longer than the ttl: only a working heartbeat keeps the lease alive
        dbmod.close_database()
        with pytest.raises(InstanceLocked):
            InstanceLease(pg, ttl=3).acquire()
        assert first.held
        instance_lock.fence()
    finally:
        first.release()


@pytest.mark.pg
def test_loss_pauses_once_notifies_admins_once_and_reacquires(pg):
    admin = User.create(telegram_id=900, status="active", is_admin=True)
    User.create(telegram_id=901, status="active")
    calls = []
    first = InstanceLease(pg, ttl=3, admin_ids=[900], on_lost=lambda: calls.append("lost"),
                          on_regained=lambda: calls.append("regained"))
    first.acquire(fencing=True)
    _expire(pg)
    other = InstanceLease(pg, ttl=3)
    other.acquire()
    for _ in range(3):
        first.beat()
    assert calls == ["lost"] and not first.held
    with pytest.raises(LeaseLost):
        instance_lock.fence()
    lost = list(Notification.select().where(Notification.kind == "lease_lost"))
    assert [n.user_id for n in lost] == [admin.id]
    other.release()
    first.beat()
    assert calls == ["lost", "regained"] and first.held
    assert first.token == other.token + 1
    instance_lock.fence()
    assert Notification.select().where(Notification.kind == "lease_regained").count() == 1
    assert Notification.select().where(Notification.kind == "lease_lost").count() == 1
    first.release()


@pytest.mark.pg
def test_killed_holder_on_this_machine_is_taken_over_at_once(pg):
    holder = _holder(pg)
    try:
        with pytest.raises(InstanceLocked) as info:
            InstanceLease(pg).acquire()
        assert f"pid {holder.pid}" in str(info.value)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        lease = InstanceLease(pg)
        lease.acquire()  # its pid is gone on this machine: no need to wait 30 s for the lease to expire
        lease.release()
    finally:
        holder.kill()


@pytest.mark.pg
def test_engine_sends_no_order_once_the_lease_is_lost(pg, replay_hub, clock, deciders):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(REAL_START, 3000, 100.0)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t = clock.ms - clock.ms % MINUTE - MINUTE
    deciders["scripted"] = ScriptedDecider({t + i * MINUTE: ("buy" if i % 2 == 0 else "sell") for i in range(6)})
    mgr = BotManager(replay_hub, lambda name: deciders[name], vault=StubVault(), clock=clock, max_workers=1)
    lease = InstanceLease(pg, ttl=30)
    lease.acquire(fencing=True)
    try:
        mgr.start_pair(cfg.id)
        mgr.run_cycle(cfg.id)
        broker = replay_hub.broker("binance", "paper")
        assert len(broker.ledger) == 1  # the buy went out while the lease was held

        _expire(pg)
        InstanceLease(pg, ttl=30).acquire()  # a second instance takes the database over
        clock.advance(1)
        with pytest.raises(LeaseLost):
            mgr.run_cycle(cfg.id)  # the sell is decided, but its intent is refused by the fence
        assert len(broker.ledger) == 1, "an order was sent without the lease"
        assert Order.select().count() == 1  # the refused intent was rolled back, nothing pending
    finally:
        mgr.shutdown(2)
        lease.release()


@pytest.mark.pg
def test_migration_2_adds_the_lease_columns_to_an_older_database(pg):
    dbmod.db.execute_sql(
        "ALTER TABLE instance_lock DROP COLUMN holder, DROP COLUMN token, DROP COLUMN expires_at, "
        "DROP COLUMN health_at, DROP COLUMN active_pairs, DROP COLUMN cycle_lag_seconds, "
        "DROP COLUMN telegram_ok, DROP COLUMN telegram_checked_at"
    )
    dbmod.db.execute_sql("DELETE FROM schema_migrations WHERE version = 2")
    assert dbmod.migrate() == [2]
    lease = InstanceLease(pg)
    lease.acquire()
    assert lease.token == 1
    lease.release()


def test_migration_2_on_an_older_sqlite_database(database):
    for column in ("holder", "token", "expires_at", "health_at", "active_pairs", "cycle_lag_seconds",
                   "telegram_ok", "telegram_checked_at"):
        dbmod.db.execute_sql(f"ALTER TABLE instance_lock DROP COLUMN {column}")
    dbmod.db.execute_sql("DELETE FROM schema_migrations WHERE version = 2")
    assert dbmod.migrate() == [2]
    assert {c.name for c in dbmod.db.get_columns("instance_lock")} >= {"holder", "token", "expires_at"}


@pytest.mark.pg
def test_running_bot_on_postgres_tells_the_admins_once_when_it_loses_and_regains_the_lease(
    pg_url, tmp_path, fake_exchange
):
    """The real `tradebot run` wiring (heartbeat thread, outbox, notifier) against the fake Telegram."""
    import threading

    from tests.fakes.telegram import FakeTelegram
    from tradebot.app import run_forever
    from tradebot.config import load_config
    from tradebot.vault import generate_key_file

    fake = FakeTelegram().start()
    (tmp_path / "config.toml").write_text(
        f'data_dir = "{tmp_path}"\n'
        f'[telegram]\ntoken = "{fake.token}"\napi_url = "{fake.api_url}"\nadmin_ids = [900]\npoll_timeout = 1\n'
        f'[database]\nurl = "{pg_url}"\nlease_seconds = 3\n'
        # the single-instance lease on PostgreSQL: only with HA workers switched off (by default a second
        # `tradebot run` joins as a worker instead of being refused: tests/test_ha_*.py)
        '[ha]\nenabled = false\n'
        f'[exchanges.binance]\napi_url = "{fake_exchange.url}"\ntestnet_api_url = "{fake_exchange.url}"\n'
    )
    cfg = load_config(tmp_path / "config.toml", env={})
    generate_key_file(cfg.key_file)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", run_forever(cfg, stop)), daemon=True)
    thread.start()
    try:
        fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
        fake.push_message(900, "/start")
        fake.wait_for_replies(900, 1, timeout=15)
        before = len(fake.replies(900))

        dbmod.open_database(pg_url)
        other = InstanceLease(pg_url, ttl=3)
        # "a second instance" takes the lease once it has expired. Both in one transaction: the running bot's
        # heartbeat (every 0.5 s) renews its own lease even after expiry, and would otherwise win the race.
        with dbmod.db.atomic():
            dbmod.db.execute_sql("UPDATE instance_lock SET expires_at = (now() AT TIME ZONE 'UTC') - interval '1 second'")
            other.acquire()
        lost = fake.wait_for_replies(900, 1, timeout=15, since=before)
        assert "Trading paused" in lost[0] and "lost its hold on the database" in lost[0]
        time.sleep(2)  # several more heartbeats: still one notice
        assert sum("Trading paused" in t for t in fake.replies(900)) == 1

        other.release()
        regained = fake.wait_for_replies(900, 1, timeout=15, since=before + 1)
        assert "holds the database again" in regained[0]
        assert InstanceLock.get_by_id("run").token == other.token + 1
    finally:
        stop.set()
        thread.join(30)
        dbmod.close_database()
        fake.stop()
    assert result.get("rc") == 0


def test_sqlite_fence_needs_our_token_but_not_a_fresh_expiry(database, sqlite_url):
    lease = InstanceLease(sqlite_url, ttl=3)
    lease.acquire(fencing=True)
    try:
        InstanceLock.update(expires_at=None).execute()  # a heartbeat held up by a busy database
        instance_lock.fence()  # the flock still excludes every other process: trading goes on
        InstanceLock.update(token=InstanceLock.token + 1).execute()
        with pytest.raises(LeaseLost):
            instance_lock.fence()
    finally:
        lease.release()
    instance_lock.fence()  # released: this process no longer fences (tools, tests)


@pytest.mark.pg
def test_a_connection_the_server_dropped_is_replaced_at_the_next_statement(pg):
    """After a PostgreSQL restart the engine's threads must not fail forever on their dead connections."""
    assert dbmod.db.execute_sql("SELECT 1").fetchone() == (1,)
    assert _kill_backends(pg) >= 1
    with pytest.raises(Exception):  # noqa: B017 - the statement that meets the break fails (driver error)
        dbmod.db.execute_sql("SELECT 1")
    assert dbmod.db.execute_sql("SELECT 2").fetchone() == (2,)
    assert User.select().count() == 0
