"""Decimal round-trips, SQLite under many threads, migrations and the schema file."""

import threading
import time
from decimal import Decimal

import peewee as pw
import pytest

from tradebot import db as dbmod
from tradebot.models import Trade, User, UserConfig
from tradebot.readonly_sql import ReadOnlyViolation
from tradebot.schema_gen import render

VALUES = [Decimal("12345678.12345678"), Decimal("0.00000001"), Decimal("-0.5"), Decimal("0"),
          Decimal("99999999999.999999999999"), Decimal("1E-12")]


def _roundtrip():
    user = User.create(telegram_id=1, username="a")
    cfg = UserConfig.create(user=user, exchange="binance", symbol="BTC/USDT", budget=Decimal("1"))
    ids = []
    for value in VALUES:
        ids.append(Trade.create(user=user, config=cfg, exchange="binance", symbol="BTC/USDT", side="sell",
                                amount=value, price=value, cost=value, pnl=value).id)
    for value, ident in zip(VALUES, ids, strict=True):
        row = Trade.get_by_id(ident)
        for got in (row.amount, row.price, row.cost, row.pnl):
            assert isinstance(got, Decimal)
            assert got == value
            assert str(got.normalize()) == str(value.normalize())


def test_decimal_roundtrip_sqlite(database):
    _roundtrip()
    # and the raw stored text is exact, not a float
    raw = dbmod.db.execute_sql("SELECT amount, typeof(amount) FROM trades ORDER BY id").fetchall()
    assert raw[0] == ("12345678.12345678", "text")


@pytest.mark.pg
def test_decimal_roundtrip_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    _roundtrip()


def test_float_is_refused(database):
    user = User.create(telegram_id=2)
    with pytest.raises(TypeError):
        UserConfig.create(user=user, exchange="binance", symbol="X/Y", budget=0.1)


def test_migrate_is_idempotent_and_versioned(database):
    # versions are assigned per feature branch, so they may skip numbers: the newest is what counts
    assert dbmod.schema_version() == dbmod.MIGRATIONS[-1][0]
    assert [v for v, _n, _f in dbmod.MIGRATIONS] == sorted({v for v, _n, _f in dbmod.MIGRATIONS})
    assert dbmod.migrate() == []  # nothing reapplied, no data dropped
    User.create(telegram_id=3)
    dbmod.migrate()
    assert User.select().count() == 1


def test_schema_sql_matches_models():
    with open("schema.sql") as fh:
        committed = fh.read()
    assert committed == render(), "schema.sql is stale: run `tradebot db schema > schema.sql`"
    names = [name for name, _ in dbmod.view_statements(committed)]
    assert {"user_overview", "recent_trades_by_user", "open_positions_by_user",
            "ai_provider_stats_by_user"} <= set(names)


def test_sqlite_many_threads_no_lock_errors_no_lost_rows(database):
    """8 writers and 4 readers for several seconds: no 'database is locked', every row there."""
    user = User.create(telegram_id=10)
    cfg = UserConfig.create(user=user, exchange="binance", symbol="BTC/USDT", budget=Decimal("1"))
    errors: list[BaseException] = []
    written = [0] * 8
    stop = time.monotonic() + 4.0

    def writer(n):
        try:
            while time.monotonic() < stop:
                with dbmod.write_tx():
                    Trade.create(user=user, config=cfg, exchange="binance", symbol="BTC/USDT", side="buy",
                                 amount=Decimal(n), price=Decimal("1"), cost=Decimal("1"))
                    # read-modify-write inside the transaction: the classic lock-upgrade trap
                    Trade.select().where(Trade.amount == str(n)).count()
                written[n] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            dbmod.db.close()

    def reader():
        try:
            while time.monotonic() < stop:
                list(dbmod.db.execute_sql("SELECT * FROM user_overview"))
                Trade.select().count()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            dbmod.db.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert sum(written) > 100
    assert Trade.select().count() == sum(written)
    for n in range(8):
        assert Trade.select().where(Trade.amount == str(n)).count() == written[n]


def _in_thread(fn):
    done = threading.Event()
    errors: list[BaseException] = []

    def run():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            dbmod.db.close()
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, errors


@pytest.mark.parametrize("how", ["autocommit", "atomic", "save"])
def test_every_sqlite_write_queues_on_the_process_writer_lock(database, how):
    """A write outside write_tx() (a single UPDATE, a peewee atomic(), a model save) waits for the process's
    writer lock like write_tx() does, instead of meeting the holder inside SQLite's sleeping busy handler."""
    user = User.create(telegram_id=11, username="before")

    def write():
        if how == "autocommit":
            User.update(username="after").where(User.id == user.id).execute()
        elif how == "atomic":
            with dbmod.db.atomic():
                User.update(username="after").where(User.id == user.id).execute()
        else:
            fresh = User.get_by_id(user.id)
            fresh.username = "after"
            fresh.save()

    with dbmod._sqlite_writer:  # another writer of this process is busy (no SQLite lock taken)
        done, errors = _in_thread(write)
        assert not done.wait(0.5), "the write went ahead while the process's writer lock was held"
        assert User.get_by_id(user.id).username == "before"
    assert done.wait(10)
    assert not errors, errors
    assert User.get_by_id(user.id).username == "after"


def test_a_failed_transaction_lets_the_writer_lock_go(database):
    User.create(telegram_id=12)
    with pytest.raises(RuntimeError):
        with dbmod.db.atomic():
            User.update(username="x").execute()
            raise RuntimeError("boom")
    with pytest.raises(pw.IntegrityError):  # a constraint error inside the transaction
        with dbmod.db.atomic():
            User.create(telegram_id=12)
    done, errors = _in_thread(lambda: User.update(username="y").execute())
    assert done.wait(5), "the writer lock was left held by a transaction that failed"
    assert not errors, errors


def test_sqlite_pragmas(database):
    assert dbmod.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dbmod.db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert dbmod.db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000


@pytest.mark.parametrize("query", [
    "DELETE FROM users", "update users set status='x'", "DROP TABLE users", "select 1; delete from users",
    "PRAGMA writable_schema=1", "WITH x AS (SELECT 1) DELETE FROM users", "ATTACH 'x' AS y", "",
])
def test_readonly_refuses_writes(database, sqlite_url, query):
    with pytest.raises(ReadOnlyViolation):
        dbmod.readonly_query(sqlite_url, query)


def test_readonly_connection_itself_refuses_writes(database, sqlite_url):
    User.create(telegram_id=77)
    with pytest.raises(ReadOnlyViolation):
        dbmod.readonly_query(sqlite_url, "DELETE FROM users")
    assert User.select().count() == 1


@pytest.mark.pg
def test_readonly_connection_refuses_writes_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    User.create(telegram_id=78)
    for query in ("DELETE FROM users", "WITH d AS (DELETE FROM users RETURNING id) SELECT * FROM d"):
        with pytest.raises(ReadOnlyViolation):
            dbmod.readonly_query(pg_url, query)
    assert User.select().count() == 1


def test_migration_7_adds_the_chat_preferences_to_existing_users(sqlite_url):
    """A database made before migration 7: its users keep working, with charts off and the keyboard on,
    and rows inserted by plain SQL (admin tooling) still get the defaults."""
    dbmod.open_database(sqlite_url)
    dbmod.migrate()
    db = dbmod.db
    for name, _sql in dbmod.view_statements():  # migrate() creates them again
        db.execute_sql(f"DROP VIEW IF EXISTS {name}")
    db.execute_sql("CREATE TABLE users_old AS SELECT id, telegram_id, username, first_name, status, is_admin, notify, "
                   "breaker_until, breaker_reason, created_at, updated_at FROM users")
    db.execute_sql("DROP TABLE users")
    db.execute_sql("ALTER TABLE users_old RENAME TO users")
    db.execute_sql("INSERT INTO users (telegram_id, status, is_admin, notify, created_at, updated_at) "
                   "VALUES (5, 'active', 0, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    db.execute_sql("DELETE FROM schema_migrations WHERE version = 7")
    assert dbmod.migrate() == [7]
    user = User.get(User.telegram_id == 5)
    assert user.notify_chart is False and user.reply_keyboard is True
    db.execute_sql("INSERT INTO users (telegram_id, status, is_admin, notify, created_at, updated_at) "
                   "VALUES (6, 'active', 0, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    assert User.get(User.telegram_id == 6).reply_keyboard is True
    dbmod.close_database()
