"""Database: URL parsing, connection setup for threads, migrations, views, read-only queries."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlparse

import peewee as pw

from .models import ALL_MODELS, MONEY_TYPE, SchemaMigration, db, utcnow
from .writer_lock import PriorityRLock

# Money is TEXT affinity on SQLite (exact) and NUMERIC on PostgreSQL.
SQLITE_FIELD_TYPES = {MONEY_TYPE: "MONEYTEXT"}
PG_FIELD_TYPES = {MONEY_TYPE: "NUMERIC"}

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30000,
    "foreign_keys": 1,
    "synchronous": "normal",
    # `tradebot run` checkpoints on a thread of its own (wal_checkpoint.py); commits only past 40 MB
    "wal_autocheckpoint": 10000,
}


class DatabaseURLError(ValueError):
    pass


@dataclass(frozen=True)
class DatabaseURL:
    kind: str  # sqlite | postgresql
    path: str | None = None  # sqlite file
    dsn: dict | None = None  # postgresql connect params

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sqlite"


def parse_url(url: str) -> DatabaseURL:
    """Accepts sqlite:///relative, sqlite:////absolute and postgresql://user:pw@host:port/name."""
    if not isinstance(url, str) or "://" not in url:
        shown = url if not isinstance(url, str) or "@" not in url else "***@" + url.rsplit("@", 1)[1]
        raise DatabaseURLError(f"expected sqlite:///path or postgresql://..., got {shown!r}")
    scheme, rest = url.split("://", 1)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise DatabaseURLError("sqlite URL needs a path: sqlite:///file.db or sqlite:////abs/file.db")
        path = rest[1:]
        if path == ":memory:":
            return DatabaseURL("sqlite", path=path)
        return DatabaseURL("sqlite", path=str(Path(path).expanduser()))
    if scheme in ("postgresql", "postgres"):
        parsed = urlparse(url)
        name = parsed.path.lstrip("/")
        if not name:
            raise DatabaseURLError("postgresql URL needs a database name: postgresql://user@host/dbname")
        try:
            port = parsed.port
        except ValueError as exc:
            raise DatabaseURLError(f"bad port in database URL: {exc}") from None
        dsn = {
            "database": name,
            "user": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "host": parsed.hostname or None,
            "port": port,
        }
        return DatabaseURL("postgresql", dsn={k: v for k, v in dsn.items() if v is not None})
    raise DatabaseURLError(f"unsupported database scheme {scheme!r}: use sqlite or postgresql")


def sqlite_uri(path: str, **params: str) -> str:
    """A `file:` URI for sqlite3.connect(..., uri=True): the path percent-encoded, so '#', '?', '%' or
    '%41' in a directory name stay part of the path instead of starting a query or decoding to 'A'."""
    if path == ":memory:":
        return "file::memory:" + ("?" + urlencode(params) if params else "")
    absolute = os.path.abspath(path)
    return "file:" + quote(absolute, safe="/") + ("?" + urlencode(params) if params else "")


def redact_url(url: str) -> str:
    """The URL with its password masked. The authority is read as parse_url reads it (up to the first
    '/', '?' or '#'); the password is everything between the first ':' and the LAST '@' in it, so a
    password containing '@' or ':' is masked whole."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "sqlite":
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{hostport}{tail}"


def readonly_sqlite_uri(path: str) -> str:
    """`mode=ro`, which never creates the database. A WAL database needs its -shm file: in a directory
    the reader may not write, and with no -wal file (no writer is active), open it as immutable."""
    uri = sqlite_uri(path, mode="ro")
    if path == ":memory:" or os.path.exists(path + "-wal") or os.access(os.path.dirname(os.path.abspath(path)),
                                                                        os.W_OK):
        return uri
    try:
        probe = sqlite3.connect(uri, uri=True)
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return uri
        finally:
            probe.close()
    except sqlite3.OperationalError:
        return sqlite_uri(path, mode="ro", immutable="1")


class DatabaseOpenError(ValueError):
    """The database cannot be opened or is not a tradebot database; one line for the operator."""


# SQLite has one writer at a time, and a writer that finds the lock taken polls for it with sleeps of up
# to 100 ms (its busy handler): with a dozen cycle and chat threads writing, most of a wait was sleeping
# after the lock was already free. Writers of this process queue on this lock instead (_SqliteDatabase);
# the chat's threads first (writer_lock.py).
_sqlite_writer = PriorityRLock()
# A writer waits this long for the lock, then goes on to SQLite's own busy wait (never worse than without
# the lock, and no deadlock can outlast it).
WRITER_WAIT_SECONDS = 30.0
_WRITE_SQL = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


class _SqliteDatabase(pw.SqliteDatabase):
    """Every write of this process holds the process's writer lock (`_sqlite_writer`): a transaction from
    BEGIN to its COMMIT or ROLLBACK, a statement outside a transaction (an autocommit UPDATE of the chat
    inbox or the notifier, say) while it runs. Before, those single statements met the cycles' write
    transactions inside SQLite and slept in its busy handler: up to 100 ms per wait on a chat reply."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writer_held = threading.local()  # one entry per BEGIN of this thread: the lock was taken

    def _take_writer(self) -> bool:
        return _sqlite_writer.acquire(timeout=WRITER_WAIT_SECONDS)

    def begin(self, lock_type=None):
        held = self._take_writer()
        try:
            super().begin(lock_type)
        except BaseException:
            if held:
                _sqlite_writer.release()
            raise
        stack = getattr(self._writer_held, "stack", None)
        if stack is None:
            stack = self._writer_held.stack = []
        stack.append(held)

    def _let_writer_go(self) -> None:
        stack = getattr(self._writer_held, "stack", None)
        if stack and stack.pop():
            _sqlite_writer.release()

    def commit(self):
        super().commit()  # a failed COMMIT keeps the lock: the ROLLBACK that follows lets it go
        self._let_writer_go()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._let_writer_go()

    def execute_sql(self, sql, params=None):
        if self.in_transaction() or not _WRITE_SQL.match(sql):
            return super().execute_sql(sql, params)
        held = self._take_writer()
        try:
            return super().execute_sql(sql, params)
        finally:
            if held:
                _sqlite_writer.release()


class _PostgresDatabase(pw.PostgresqlDatabase):
    """A thread whose connection the server dropped (restart, pg_terminate_backend, network cut) gets a
    new one at its next statement outside a transaction: the statement that met the break fails, the
    following ones work again (nothing is retried, so nothing runs twice). Without this, every later
    statement of that thread failed with 'connection already closed' until a restart."""

    def cursor(self, named_cursor=None):
        conn = self._state.conn
        if conn is not None and not self._state.closed and conn.closed and not self.in_transaction():
            self.close()
        return super().cursor(named_cursor)


def make_database(url: str, readonly: bool = False) -> pw.Database:
    parsed = parse_url(url)
    if parsed.is_sqlite:
        if readonly:
            # mode=ro: never creates the file, never writes; no journal_mode change on a read-only handle
            return pw.SqliteDatabase(
                readonly_sqlite_uri(parsed.path), uri=True, pragmas={"busy_timeout": 30000, "query_only": 1},
                timeout=30, field_types=SQLITE_FIELD_TYPES, check_same_thread=False,
            )
        if parsed.path != ":memory:":
            Path(parsed.path).parent.mkdir(parents=True, exist_ok=True)
        # BEGIN IMMEDIATE: a writer takes the lock up front and waits (busy_timeout)
        # instead of failing with "database is locked" when upgrading a read lock.
        return _SqliteDatabase(
            parsed.path if parsed.path == ":memory:" else sqlite_uri(parsed.path),
            uri=True,
            pragmas=SQLITE_PRAGMAS,
            timeout=30,
            lock_type="IMMEDIATE",
            field_types=SQLITE_FIELD_TYPES,
            check_same_thread=False,
        )
    if readonly:
        return pw.PostgresqlDatabase(field_types=PG_FIELD_TYPES, options="-c default_transaction_read_only=on",
                                     **parsed.dsn)
    return _PostgresDatabase(field_types=PG_FIELD_TYPES, **parsed.dsn)


def open_database(url: str) -> pw.Database:
    """Bind the models to the database at `url` (one connection per thread). A database that cannot be
    reached or is not a database at all (a corrupted file) raises DatabaseOpenError, one line."""
    database = make_database(url)
    db.initialize(database)
    try:
        database.connect(reuse_if_open=True)
        database.execute_sql("SELECT 1 FROM sqlite_master LIMIT 1" if isinstance(database, pw.SqliteDatabase)
                             else "SELECT 1")
    except (pw.DatabaseError, pw.InterfaceError, sqlite3.Error, OSError) as exc:
        close_database()
        raise DatabaseOpenError(f"cannot open {redact_url(url)}: {_first_line(exc)}") from None
    return database


def open_database_readonly(url: str) -> pw.Database:
    """For commands that only read (`admin users`, `admin user`): no file is created, nothing is
    migrated, and the engine refuses writes. Refuses a database that is missing or not migrated."""
    parsed = parse_url(url)
    if parsed.is_sqlite and parsed.path != ":memory:" and not Path(parsed.path).is_file():
        raise DatabaseOpenError(f"no database at {parsed.path} (create it with `tradebot init`)")
    database = make_database(url, readonly=True)
    db.initialize(database)
    try:
        database.connect(reuse_if_open=True)
        version = schema_version()
    except pw.DatabaseError as exc:
        close_database()
        raise DatabaseOpenError(f"cannot read {redact_url(url)}: {_first_line(exc)}") from None
    latest = MIGRATIONS[-1][0]
    if version < latest:
        close_database()
        raise DatabaseOpenError(
            f"database schema is at version {version}, this tradebot needs {latest}: run `tradebot db migrate`"
        )
    return database


def _first_line(exc) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def close_database() -> None:
    if db.obj is not None and not db.is_closed():
        db.close()


def is_sqlite() -> bool:
    return isinstance(db.obj, pw.SqliteDatabase)


@contextmanager
def write_tx():
    """A write transaction (BEGIN IMMEDIATE on SQLite; one writer thread of the process at a time)."""
    if isinstance(db.obj, pw.SqliteDatabase):
        with _sqlite_writer, db.atomic():
            yield
    else:
        with db.atomic():
            yield


# ---------------------------------------------------------------- schema


def schema_sql_text() -> str:
    """The top-level schema.sql (packaged into the wheel; the repo copy in a checkout)."""
    packaged = resources.files("tradebot").joinpath("schema.sql")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "schema.sql").read_text(encoding="utf-8")


_VIEW_RE = re.compile(r"CREATE\s+VIEW\s+(\w+)\s+AS\s+(.*?);\s*$", re.S | re.I | re.M)


def view_statements(text: str | None = None) -> list[tuple[str, str]]:
    """(name, CREATE VIEW statement) pairs from schema.sql's views section."""
    text = schema_sql_text() if text is None else text
    section = text.split("-- @views", 1)[1] if "-- @views" in text else text
    return [(m.group(1), f"CREATE VIEW {m.group(1)} AS {m.group(2)}") for m in _VIEW_RE.finditer(section)]


def create_views() -> None:
    for name, statement in view_statements():
        db.execute_sql(f"DROP VIEW IF EXISTS {name}")
        db.execute_sql(statement)


def tables_ddl_postgres() -> str:
    """The CREATE TABLE/INDEX statements peewee issues on PostgreSQL, for schema.sql."""
    pg = pw.PostgresqlDatabase(None, field_types=PG_FIELD_TYPES)
    out = []
    with pg.bind_ctx(ALL_MODELS, bind_refs=False, bind_backrefs=False):
        for model in ALL_MODELS:
            ctx = model._schema._create_table(safe=True)
            sql, _ = ctx.query()
            out.append(sql + ";")
            for index in model._schema._create_indexes(safe=True):
                isql, _ = index.query()
                out.append(isql + ";")
    return "\n".join(out)


# ---------------------------------------------------------------- migrations


def _m001_initial() -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _add_missing_columns(model, names: list[str]) -> None:
    """Add `names` of `model` that the table lacks (a database made by migration 1 of an earlier release;
    migration 1 of this one already creates them)."""
    from playhouse import migrate as pm

    have = {c.name for c in db.get_columns(model._meta.table_name)}
    migrator = pm.SqliteMigrator(db) if is_sqlite() else pm.PostgresqlMigrator(db)
    fields = model._meta.fields
    ops = [migrator.add_column(model._meta.table_name, fields[n].column_name, fields[n])
           for n in names if fields[n].column_name not in have]
    if ops:
        pm.migrate(*ops)


def _m002_instance_lease() -> None:
    from .models import InstanceLock

    _add_missing_columns(InstanceLock, [
        "holder", "token", "expires_at", "health_at", "active_pairs", "cycle_lag_seconds", "telegram_ok",
        "telegram_checked_at",
    ])


def _m003_decision_tallies() -> None:
    from .models import DecisionTally

    db.create_tables([DecisionTally], safe=True)


def _m004_futures() -> None:
    from .models import Position, UserConfig, UserState

    _add_missing_columns(UserConfig, ["market_type", "margin_mode", "direction", "trailing_stop_percent"])
    _add_missing_columns(UserState, ["funding_paid", "last_funding_ts"])
    _add_missing_columns(Position, ["margin", "funding", "liquidation_price"])


def _m005_llm_answers() -> None:
    from .models import AIDecision, LLMAnswer

    db.create_tables([LLMAnswer], safe=True)
    _add_missing_columns(AIDecision, ["llm_answer"])


def _m006_pair_preset() -> None:
    from .models import UserConfig

    _add_missing_columns(UserConfig, ["preset"])


def _m007_chat_preferences() -> None:
    # plain DDL, the same on SQLite and PostgreSQL: NOT NULL with a default fills the existing rows
    have = {c.name for c in db.get_columns("users")}
    for column, default in (("notify_chart", "FALSE"), ("reply_keyboard", "TRUE")):
        if column not in have:
            db.execute_sql(f"ALTER TABLE users ADD COLUMN {column} BOOLEAN NOT NULL DEFAULT {default}")


def _m008_ha_workers() -> None:
    from .models import PairLease, Worker

    db.create_tables([Worker, PairLease], safe=True)


def _m009_telegram_inbox() -> None:
    from .models import Notification, TelegramUpdate

    db.create_tables([TelegramUpdate], safe=True)
    _add_missing_columns(Notification, ["claimed_by", "claimed_at"])


# (version, name, function). Append only; never edit an applied migration.
MIGRATIONS: list[tuple[int, str, callable]] = [
    (1, "initial schema", _m001_initial),
    (2, "instance lease and health", _m002_instance_lease),
    (3, "decision tallies (repeated hold decisions counted per pair and day)", _m003_decision_tallies),
    (4, "futures: market type, leverage, margin mode, direction, trailing stop, funding", _m004_futures),
    (5, "llm answers (shared provider answers, tokens, cost) linked from ai_decisions", _m005_llm_answers),
    (6, "pair preset (user_configs.preset)", _m006_pair_preset),
    (7, "chat preferences: daily equity chart, reply keyboard", _m007_chat_preferences),
    (8, "HA workers and pair leases (PostgreSQL)", _m008_ha_workers),
    (9, "telegram inbox (update offset in the database) and outbox claims", _m009_telegram_inbox),
]


@contextmanager
def readonly_pg_cursor(parsed, timeout_ms: int = 10_000):
    """A cursor on a new read-only PostgreSQL session with a statement timeout, for status readers that
    must never write nor wait on the running bot (`tradebot status`); rolled back and closed after."""
    import psycopg2

    conn = psycopg2.connect(connect_timeout=10, **parsed.dsn)
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", (int(timeout_ms),))
            yield cur
    finally:
        conn.rollback()
        conn.close()


MIGRATE_LOCK_KEY = 7_421_700_017  # pg_advisory_lock key: one `migrate()` at a time per database


def migrate() -> list[int]:
    """Apply pending migrations in order, then (re)create the views. Returns versions applied.
    PostgreSQL: several workers starting at once (issue 17) take turns (an advisory lock); without it
    their concurrent view and grant statements failed with 'tuple concurrently updated'."""
    if is_sqlite():
        return _migrate()
    db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
    try:
        return _migrate()
    finally:
        try:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
        except pw.DatabaseError:  # the connection broke: the server dropped the lock with it
            pass


def _migrate() -> list[int]:
    db.create_tables([SchemaMigration], safe=True)
    done = {m.version for m in SchemaMigration.select(SchemaMigration.version)}
    applied = []
    for version, name, func in MIGRATIONS:
        if version in done:
            continue
        with db.atomic():
            func()
            SchemaMigration.create(version=version, name=name, applied_at=utcnow())
        applied.append(version)
    with db.atomic():
        create_views()
    if not is_sqlite():
        from .readonly_sql import setup_postgres

        try:
            setup_postgres(db)  # the read-only role and query function of `tradebot admin sql`
        except pw.DatabaseError as exc:  # e.g. no CREATE on the database: the bot must still start
            import logging

            logging.getLogger(__name__).warning(
                "PostgreSQL: cannot prepare `tradebot admin sql` (%s); it will refuse to run until "
                "`tradebot db migrate` succeeds as a user with CREATE on the database", _first_line(exc))
    return applied


def schema_version() -> int:
    if not db.table_exists("schema_migrations"):
        return 0
    row = SchemaMigration.select(pw.fn.MAX(SchemaMigration.version)).scalar()
    return row or 0


# ---------------------------------------------------------------- read-only SQL (tradebot admin sql)


def readonly_query(url: str, query: str, **limits):
    """One read-only query through `readonly_sql` (the engine enforces it); (columns, rows)."""
    from .readonly_sql import run_readonly

    result = run_readonly(url, query, **limits)
    return result.columns, result.rows


# ---------------------------------------------------------------- backup


def backup_sqlite(url: str, dest: str | Path) -> Path:
    """Online backup through SQLite's backup API: consistent even while the bot writes."""
    parsed = parse_url(url)
    if not parsed.is_sqlite:
        raise DatabaseURLError("online backup is for SQLite; use pg_dump for PostgreSQL")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(readonly_sqlite_uri(parsed.path), uri=True, timeout=30)
    out = sqlite3.connect(sqlite_uri(str(dest)), uri=True)  # escaped like the source: '#', '?', '%'
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()
    return dest


def pg_dump_command(url: str, dest: str) -> str:
    parsed = parse_url(url)
    dsn = parsed.dsn or {}
    parts = ["pg_dump", "--format=custom", f"--file={dest}"]
    if "host" in dsn:
        parts.append(f"--host={dsn['host']}")
    if "port" in dsn:
        parts.append(f"--port={dsn['port']}")
    if "user" in dsn:
        parts.append(f"--username={dsn['user']}")
    parts.append(dsn.get("database", ""))
    prefix = "PGPASSWORD=... " if "password" in dsn else ""
    return prefix + " ".join(parts)
