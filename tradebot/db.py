"""Database: URL parsing, connection setup for threads, migrations, views, read-only queries."""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlparse

import peewee as pw

from .models import ALL_MODELS, MONEY_TYPE, SchemaMigration, db, utcnow

# Money is TEXT affinity on SQLite (exact) and NUMERIC on PostgreSQL.
SQLITE_FIELD_TYPES = {MONEY_TYPE: "MONEYTEXT"}
PG_FIELD_TYPES = {MONEY_TYPE: "NUMERIC"}

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30000,
    "foreign_keys": 1,
    "synchronous": "normal",
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
        raise DatabaseURLError(f"expected sqlite:///path or postgresql://..., got {url!r}")
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


def make_database(url: str) -> pw.Database:
    parsed = parse_url(url)
    if parsed.is_sqlite:
        if parsed.path != ":memory:":
            Path(parsed.path).parent.mkdir(parents=True, exist_ok=True)
        # BEGIN IMMEDIATE: a writer takes the lock up front and waits (busy_timeout)
        # instead of failing with "database is locked" when upgrading a read lock.
        return pw.SqliteDatabase(
            parsed.path,
            pragmas=SQLITE_PRAGMAS,
            timeout=30,
            lock_type="IMMEDIATE",
            field_types=SQLITE_FIELD_TYPES,
            check_same_thread=False,
        )
    return pw.PostgresqlDatabase(field_types=PG_FIELD_TYPES, **parsed.dsn)


def open_database(url: str) -> pw.Database:
    """Bind the models to the database at `url` (one connection per thread)."""
    database = make_database(url)
    db.initialize(database)
    database.connect(reuse_if_open=True)
    return database


def close_database() -> None:
    if db.obj is not None and not db.is_closed():
        db.close()


def is_sqlite() -> bool:
    return isinstance(db.obj, pw.SqliteDatabase)


# SQLite has one writer at a time, and a writer that finds the lock taken polls for it with sleeps of up
# to 100 ms (its busy handler): with a dozen cycle and chat threads writing, most of a wait was sleeping
# after the lock was already free. Writers of this process queue on this lock instead.
_sqlite_writer = threading.RLock()


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


def _m002_decision_tallies() -> None:
    from .models import DecisionTally

    db.create_tables([DecisionTally], safe=True)


# (version, name, function). Append only; never edit an applied migration.
MIGRATIONS: list[tuple[int, str, callable]] = [
    (1, "initial schema", _m001_initial),
    (2, "decision tallies (repeated hold decisions counted per pair and day)", _m002_decision_tallies),
]


def migrate() -> list[int]:
    """Apply pending migrations in order, then (re)create the views. Returns versions applied."""
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
    return applied


def schema_version() -> int:
    if not db.table_exists("schema_migrations"):
        return 0
    row = SchemaMigration.select(pw.fn.MAX(SchemaMigration.version)).scalar()
    return row or 0


# ---------------------------------------------------------------- read-only SQL

_WRITE_WORDS = re.compile(
    r"\b(insert|update|delete|drop|alter|create|replace|truncate|attach|detach|pragma|vacuum|grant|revoke|"
    r"copy|reindex|comment|lock|call|do|set|begin|commit|rollback|savepoint|release)\b",
    re.I,
)


class ReadOnlyViolation(ValueError):
    pass


# One left-to-right pass, so that whichever starts first wins: a '--' or '/*' inside a string is text, and a
# quote inside a comment is comment. (Two passes let "SELECT '/*'; DELETE ...; SELECT '*/'" look harmless.)
_SQL_NOISE = re.compile(r"""'(?:[^']|'')*'?|"(?:[^"]|"")*"?|--[^\n]*|/\*.*?(?:\*/|\Z)""", re.S)


def _strip_sql(query: str) -> str:
    """The query with string literals emptied, quoted identifiers emptied and comments removed."""

    def blank(m: re.Match) -> str:
        first = m.group()[0]
        return "''" if first == "'" else '""' if first == '"' else " "

    return _SQL_NOISE.sub(blank, query).strip().rstrip(";").strip()


def check_read_only(query: str) -> None:
    body = _strip_sql(query)
    if not body:
        raise ReadOnlyViolation("empty query")
    if ";" in body:
        raise ReadOnlyViolation("only one statement is allowed")
    first = body.split(None, 1)[0].lower()
    if first not in ("select", "with", "values", "explain") or _WRITE_WORDS.search(body):
        raise ReadOnlyViolation("only read-only SELECT queries are allowed")


def readonly_query(url: str, query: str) -> tuple[list[str], list[tuple]]:
    """Run one SELECT on a separate read-only connection. Defence in depth: a keyword
    check first, then the engine itself refuses writes (SQLite mode=ro, PG READ ONLY)."""
    check_read_only(query)
    return run_readonly(url, query)


def run_readonly(url: str, query: str) -> tuple[list[str], list[tuple]]:
    """The engine-level half of `readonly_query`: a connection that cannot write."""
    parsed = parse_url(url)
    if parsed.is_sqlite:
        conn = sqlite3.connect(f"file:{parsed.path}?mode=ro", uri=True, timeout=30)
        try:
            conn.execute("PRAGMA query_only = 1")
            cur = conn.execute(query)
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()
        finally:
            conn.close()
    import psycopg2

    conn = psycopg2.connect(**parsed.dsn)
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute(query)
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()
    finally:
        conn.rollback()
        conn.close()


# ---------------------------------------------------------------- backup


def backup_sqlite(url: str, dest: str | Path) -> Path:
    """Online backup through SQLite's backup API: consistent even while the bot writes."""
    parsed = parse_url(url)
    if not parsed.is_sqlite:
        raise DatabaseURLError("online backup is for SQLite; use pg_dump for PostgreSQL")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{parsed.path}?mode=ro", uri=True, timeout=30)
    out = sqlite3.connect(str(dest))
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
