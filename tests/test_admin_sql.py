"""`tradebot admin sql` and the other read-only commands (issue 10, items 1, 6, 7): the database engine
refuses writes, second statements and side-effecting functions; the tool is bounded in time and memory;
paths with URI metacharacters work; nothing is migrated or created."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_cli import tb
from tradebot import db as dbmod
from tradebot.models import User
from tradebot.readonly_sql import QueryError, ReadOnlyViolation, run_readonly

# ------------------------------------------------------------------ SQLite: allowlist authorizer


@pytest.mark.parametrize("query", [
    "SELECT hex(fts3_tokenizer('simple'))",  # Debian's SQLite: leaks a native pointer
    "SELECT fts3_tokenizer('x', x'4141414141414141')",  # ... and sets one
    "SELECT load_extension('/nonexistent')",
    "SELECT * FROM pragma_table_info('users')",
    "PRAGMA writable_schema = 1",
    "PRAGMA query_only = 0",
    "ATTACH 'other.db' AS other",
    "SELECT zeroblob(1000000000)",
    "INSERT INTO users (telegram_id) VALUES (9)",
    "WITH x AS (SELECT 1) DELETE FROM users",
    "SELECT 1; DELETE FROM users",
])
def test_sqlite_refuses_everything_but_reads_and_named_functions(database, sqlite_url, query):
    User.create(telegram_id=5)
    with pytest.raises(ReadOnlyViolation):
        run_readonly(sqlite_url, query)
    assert [u.telegram_id for u in User.select()] == [5]


@pytest.mark.parametrize("query, expected", [
    ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) SELECT sum(x) FROM n", 15),
    ("SELECT upper(substr('abc', 2)) || printf('%d', 7)", "BC7"),
    ("SELECT count(*) FROM user_overview", 1),
    ("SELECT round(julianday('2026-01-02') - julianday('2026-01-01'))", 1.0),
])
def test_sqlite_reads_and_safe_functions_work(database, sqlite_url, query, expected):
    User.create(telegram_id=5)
    result = run_readonly(sqlite_url, query)
    assert result.rows == [(expected,)] and not result.truncated


def test_sqlite_never_ending_query_stops_at_the_deadline(database, sqlite_url):
    with pytest.raises(QueryError, match="stopped after 0.5 s"):
        run_readonly(sqlite_url, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                                 "SELECT count(*) FROM n", timeout=0.5)


def test_sqlite_output_is_capped(database, sqlite_url):
    result = run_readonly(sqlite_url, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                                      "SELECT x, printf('%.100c', 'y') FROM n", max_rows=2500)
    assert result.truncated and len(result.rows) == 2500 and result.rows[-1][0] == 2500
    result = run_readonly(sqlite_url, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                                      "SELECT printf('%.1000c', 'y') FROM n", max_bytes=100_000)
    assert result.truncated and len(result.rows) == 100


def test_cli_prints_the_truncation_line(initialized):
    cfg, _ = initialized
    res = tb("--config", str(cfg), "admin", "sql", "--max-rows", "3",
             "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-2:] == ["(3 rows)", "(truncated after 3 rows; use --max-rows or a LIMIT)"]


# ------------------------------------------------------------------ item 6: URI metacharacters in paths


def _users(path: Path) -> list[int]:
    conn = sqlite3.connect(str(path))
    try:
        return [r[0] for r in conn.execute("SELECT telegram_id FROM users ORDER BY telegram_id")]
    finally:
        conn.close()


@pytest.mark.parametrize("dirname", ["a #b", "q?mode=rwc", "p%41", "100% sure", "x%2541 y"])
def test_paths_with_uri_metacharacters(tmp_path, dirname):
    data = tmp_path / dirname
    cfg = tmp_path / "c.toml"
    res = tb("--config", str(cfg), "init", "--non-interactive", "--telegram-token", "123:abc",
             "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    assert tb("--config", str(cfg), "admin", "approve", "4242").returncode == 0
    # A decoy where a naive URI would land ('%41' decodes to 'A', '#'/'?' cut the path short).
    decoy = tmp_path / dirname.replace("%41", "A").split("#")[0].split("?")[0].rstrip()
    if decoy != data:
        decoy.mkdir(exist_ok=True)
        shutil.copy(data / "tradebot.db", decoy / "tradebot.db")
        conn = sqlite3.connect(str(decoy / "tradebot.db"))
        conn.execute("UPDATE users SET telegram_id = 999")
        conn.commit()
        conn.close()
    before = set(tmp_path.rglob("*"))

    res = tb("--config", str(cfg), "admin", "sql", "SELECT telegram_id FROM users")
    assert res.returncode == 0, res.stderr
    assert "4242" in res.stdout and "999" not in res.stdout

    dest = tmp_path / f"backup {dirname}.db"  # the destination name is escaped too
    res = tb("--config", str(cfg), "db", "backup", str(dest))
    assert res.returncode == 0, res.stderr
    assert _users(dest) == [4242]
    stray = {p for p in set(tmp_path.rglob("*")) - before if p != dest and not p.name.endswith(("-wal", "-shm"))}
    assert not stray


def test_sqlite_uri_escapes_the_path():
    uri = dbmod.sqlite_uri("/d/a #b?c%41 e/t.db", mode="ro")
    assert uri == "file:/d/a%20%23b%3Fc%2541%20e/t.db?mode=ro"


# ------------------------------------------------------------------ item 7: read-only commands


def _fingerprint(db_file: Path) -> tuple:
    conn = sqlite3.connect(dbmod.sqlite_uri(str(db_file), mode="ro", immutable="1"), uri=True)
    try:
        cookie = conn.execute("PRAGMA schema_version").fetchone()[0]
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    finally:
        conn.close()
    return cookie, versions, hashlib.sha256(db_file.read_bytes()).hexdigest()


def test_read_only_commands_do_not_migrate(initialized):
    cfg, data = initialized
    assert tb("--config", str(cfg), "admin", "approve", "42").returncode == 0
    before = _fingerprint(data / "tradebot.db")
    for args in (("admin", "sql", "SELECT * FROM user_overview"), ("admin", "users"), ("admin", "user", "42")):
        res = tb("--config", str(cfg), *args)
        assert res.returncode == 0, (args, res.stderr)
        assert "42" in res.stdout
    assert _fingerprint(data / "tradebot.db") == before


def test_read_only_commands_never_create_a_database(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "D"}"\n')
    for args in (("admin", "sql", "SELECT 1"), ("admin", "users"), ("admin", "user", "1")):
        res = tb("--config", str(cfg), *args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "D").exists()


def test_read_only_commands_refuse_an_unmigrated_database(initialized):
    cfg, data = initialized
    conn = sqlite3.connect(str(data / "tradebot.db"))
    conn.execute("DELETE FROM schema_migrations")
    conn.commit()
    conn.close()
    res = tb("--config", str(cfg), "admin", "users")
    assert res.returncode == 2 and "tradebot db migrate" in res.stderr
    assert _fingerprint(data / "tradebot.db")[1] == []  # still not migrated


_RO_MOUNT = 'mount --bind "$RO_DIR" "$RO_DIR" && mount -o remount,bind,ro "$RO_DIR" && exec "$@"'


def _read_only_prefix(directory: Path) -> list[str]:
    """Root ignores permission bits: as root, make the directory read-only with a bind mount in a private
    mount namespace (the kernel then refuses every write, root's too)."""
    if os.geteuid() != 0:
        return []
    probe = subprocess.run(["unshare", "-m", "sh", "-c", _RO_MOUNT, "sh", "true"], capture_output=True,
                           env={**os.environ, "RO_DIR": str(directory)}, timeout=30)
    if probe.returncode != 0:
        pytest.skip("running as root without mount namespaces: cannot make a directory read-only for root")
    return ["unshare", "-m", "sh", "-c", _RO_MOUNT, "sh"]


def test_read_only_data_directory(tmp_path):
    base = tmp_path
    if True:
        data = base / "D"
        cfg = base / "c.toml"
        res = tb("--config", str(cfg), "init", "--non-interactive", "--telegram-token", "123:abc",
                 "--data-dir", str(data))
        assert res.returncode == 0, res.stderr
        assert tb("--config", str(cfg), "admin", "approve", "4343").returncode == 0
        for p in [base, data, *data.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        data.chmod(0o555)
        (data / "tradebot.db").chmod(0o444)
        before = (sorted(p.name for p in data.iterdir()), _fingerprint(data / "tradebot.db"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
        prefix = _read_only_prefix(data)
        env["RO_DIR"] = str(data)
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(data / 'x')!r}, 'w')"], env=env,
                               capture_output=True, timeout=60)
        assert probe.returncode != 0  # the directory really is read-only for the CLI below
        for args in (("admin", "sql", "SELECT telegram_id FROM users"), ("admin", "users"), ("admin", "user", "4343")):
            res = subprocess.run([*prefix, sys.executable, "-m", "tradebot", "--config", str(cfg), *args],
                                 capture_output=True, text=True, env=env, timeout=60, cwd=str(base))
            assert res.returncode == 0, (args, res.stderr)
            assert "4343" in res.stdout
        assert (sorted(p.name for p in data.iterdir()), _fingerprint(data / "tradebot.db")) == before
        data.chmod(0o755)


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def pg_users(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    for tid in (555, 556):
        User.create(telegram_id=tid, status="active")
    yield pg_url
    dbmod.close_database()


def _pg_state():
    return sorted((u.telegram_id, u.status) for u in User.select())


ISSUE_REPRODUCTIONS = [
    "SELECT E'\\'';COMMIT;UPDATE users SET status='blocked' WHERE telegram_id=555;--'",
    "SELECT $$'$$;COMMIT;DELETE FROM users WHERE telegram_id=556;SELECT $$'$$",
]
VARIANTS = [
    "SELECT $tag$'$tag$;COMMIT;DELETE FROM users;SELECT $tag$'$tag$",
    "SELECT 1 /* ; */; ROLLBACK; BEGIN; DELETE FROM users; COMMIT",
    "SELECT 1; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; DELETE FROM users",
    "SELECT 1; SET transaction_read_only = off; DELETE FROM users",
    "SELECT 1; RESET ALL; DELETE FROM users",
    "SELECT 1; RESET ROLE; DELETE FROM users",
    "COMMIT",
    "BEGIN",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "DELETE FROM users",
    "UPDATE users SET status = 'blocked'",
    "WITH d AS (DELETE FROM users RETURNING telegram_id) SELECT * FROM d",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "SELECT set_config('transaction_read_only', 'off', false), (SELECT count(*) FROM users)",
    "SELECT set_config('role', current_user, false)",
    "SELECT set_config('role', session_user, false)",
    "SELECT nextval('users_id_seq')",
    "SELECT setval('users_id_seq', 1)",
    "SELECT lo_import('/etc/hostname')",
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT * FROM dblink('dbname=postgres', 'DELETE FROM users') AS t(x text)",
    "CREATE TEMP TABLE t AS SELECT 1",
    "EXPLAIN ANALYZE DELETE FROM users",
    "",
]


@pytest.mark.pg
@pytest.mark.parametrize("query", ISSUE_REPRODUCTIONS + VARIANTS)
def test_postgres_refuses_writes_and_smuggled_statements(pg_users, query):
    before = _pg_state()
    with pytest.raises((ReadOnlyViolation, QueryError)):
        run_readonly(pg_users, query, timeout=5)
    assert _pg_state() == before == [(555, "active"), (556, "active")]


@pytest.mark.pg
@pytest.mark.parametrize("query", ISSUE_REPRODUCTIONS)
def test_issue_reproductions_end_to_end(pg_users, tmp_path, query):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{pg_users}"\n')
    res = tb("--config", str(cfg), "admin", "sql", query)
    assert res.returncode == 2 and "refused" in res.stderr and "Traceback" not in res.stderr
    assert _pg_state() == [(555, "active"), (556, "active")]


@pytest.mark.pg
def test_postgres_reads_work(pg_users):
    result = run_readonly(pg_users, "SELECT telegram_id, status, 1.50::numeric AS n FROM users ORDER BY 1;")
    assert result.columns == ["telegram_id", "status", "n"]
    assert result.rows == [(555, "active", pytest.approx(1.5)), (556, "active", pytest.approx(1.5))]
    assert str(result.rows[0][2]) == "1.50"  # exact decimal, not a float
    assert run_readonly(pg_users, "VALUES (1, 'a')").rows == [(1, "a")]


def _pg_role_or_skip(pg_url):
    import psycopg2

    conn = psycopg2.connect(**dbmod.parse_url(pg_url).dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT p.proowner::regrole::text <> current_user FROM pg_proc p "
                        "WHERE p.oid = to_regprocedure('tradebot_ro.select_json(text,integer,bigint)')")
            separate = cur.fetchone()[0]
    finally:
        conn.close()
    if not separate:
        pytest.skip("the test database user may not create roles (needs CREATEROLE, see README: read-only SQL)")


@pytest.mark.pg
def test_postgres_query_cannot_kill_the_bots_connections(pg_users):
    import psycopg2

    _pg_role_or_skip(pg_users)
    bot = psycopg2.connect(**dbmod.parse_url(pg_users).dsn)  # stands for the bot's instance-lock session
    try:
        with bot.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), pg_advisory_lock(12345)")
            pid = cur.fetchone()[0]
        for query in (f"SELECT pg_terminate_backend({pid})", f"SELECT pg_cancel_backend({pid})",
                      f"SELECT set_config('role', session_user, false), pg_terminate_backend({pid})",
                      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"):
            try:
                result = run_readonly(pg_users, query, timeout=5)
            except ReadOnlyViolation:
                continue
            assert True not in [v for row in result.rows for v in row], query
        with bot.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        bot.close()


@pytest.mark.pg
def test_postgres_without_read_only_role_warns(pg_users):
    import psycopg2

    result = run_readonly(pg_users, "SELECT 1")
    conn = psycopg2.connect(**dbmod.parse_url(pg_users).dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT p.proowner::regrole::text = current_user FROM pg_proc p "
                    "WHERE p.oid = to_regprocedure('tradebot_ro.select_json(text,integer,bigint)')")
        own = cur.fetchone()[0]
    conn.close()
    assert bool(result.notes) == own


@pytest.mark.pg
@pytest.mark.parametrize("query", [
    "SELECT pg_sleep(600)",
    "SELECT set_config('statement_timeout', '0', false), pg_sleep(600)",
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
])
def test_postgres_statement_timeout(pg_users, query):
    with pytest.raises(QueryError, match="stopped after 1 s"):
        run_readonly(pg_users, query, timeout=1)


@pytest.mark.pg
def test_postgres_output_is_capped(pg_users):
    result = run_readonly(pg_users, "SELECT g, repeat('x', 100) FROM generate_series(1, 10000000) g", max_rows=1000)
    assert result.truncated and len(result.rows) == 1000 and result.rows[-1][0] == 1000


@pytest.mark.pg
def test_postgres_admin_sql_does_not_migrate(pg_users, tmp_path):
    dbmod.db.execute_sql("DROP VIEW user_overview CASCADE")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{pg_users}"\n')
    res = tb("--config", str(cfg), "admin", "sql", "SELECT count(*) FROM users")
    assert res.returncode == 0 and "2" in res.stdout, res.stderr
    assert not dbmod.db.table_exists("user_overview") and "user_overview" not in dbmod.db.get_views()


@pytest.mark.pg
def test_postgres_unprepared_database_is_one_line(pg_url, tmp_path):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    dbmod.db.execute_sql("DROP SCHEMA tradebot_ro CASCADE")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{pg_url}"\n')
    res = tb("--config", str(cfg), "admin", "sql", "SELECT 1")
    assert res.returncode == 1 and "tradebot db migrate" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.pg
def test_postgres_migrate_survives_when_admin_sql_cannot_be_prepared(pg_url, monkeypatch, caplog):
    import peewee as pw

    from tradebot import readonly_sql

    def refuse(_database):
        raise pw.ProgrammingError("permission denied for database")

    monkeypatch.setattr(readonly_sql, "setup_postgres", refuse)
    dbmod.open_database(pg_url)
    assert dbmod.migrate() == [v for v, _, _ in dbmod.MIGRATIONS]  # the bot's own schema is complete
    assert "cannot prepare `tradebot admin sql`" in caplog.text
    with pytest.raises(Exception, match="tradebot db migrate"):
        run_readonly(pg_url, "SELECT 1")
