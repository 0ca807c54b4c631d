"""`tradebot admin sql`: one read-only query, bounded in time and memory, enforced by the engine.

No keyword filter decides anything here; the database does:
- SQLite: a `mode=ro` connection with an ALLOWLIST authorizer (reads, recursive CTEs and a named set of
  pure functions; everything else, e.g. PRAGMA, ATTACH, fts3_tokenizer or load_extension, is denied
  while the statement is compiled). The sqlite3 module compiles exactly one statement. A progress handler
  stops it at the deadline; SQLITE_LIMIT_LENGTH bounds any single value.
- PostgreSQL: the text travels as a bound string to `tradebot_ro.select_json()`, a PL/pgSQL function that
  opens it as a cursor (the server parses it and refuses anything but one row-returning statement, so
  no COMMIT can be smuggled). The session and transaction are read-only and have a statement timeout.
  The function is SECURITY DEFINER and owned by a NOLOGIN role that may only SELECT (created by
  `tradebot db migrate` when the database user may create roles): inside it the query runs as that
  role, cannot `SET ROLE` back (PostgreSQL refuses role changes in a security-definer function) and
  cannot signal the bot's backends (pg_terminate_backend needs membership in the bot's role).
Both engines stop after `max_rows` rows or `max_bytes` of row data and say so.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from decimal import Decimal

from .db import DatabaseOpenError, parse_url, readonly_sqlite_uri, redact_url

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 64 << 20  # row data kept in memory for printing
MAX_VALUE_BYTES = 16 << 20  # SQLite: the longest string or blob a query may build

PG_SCHEMA = "tradebot_ro"
PG_FUNCTION = f"{PG_SCHEMA}.select_json(text,integer,bigint)"


class ReadOnlyViolation(ValueError):
    """The engine refused the query as a write, a second statement or a forbidden function."""


class QueryError(Exception):
    """The query failed (syntax, unknown column, timeout); one line for the operator."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool = False
    notes: list[str] = field(default_factory=list)  # warnings for the operator (stderr)


def run_readonly(url: str, query: str, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 max_rows: int = DEFAULT_MAX_ROWS, max_bytes: int = DEFAULT_MAX_BYTES) -> QueryResult:
    if not query.strip().rstrip(";").strip():
        raise ReadOnlyViolation("empty query")
    parsed = parse_url(url)
    if parsed.is_sqlite:
        return _run_sqlite(parsed.path, query, timeout, max_rows, max_bytes)
    return _run_postgres(parsed.dsn, query, timeout, max_rows, max_bytes, shown_url=redact_url(url))


# ---------------------------------------------------------------- SQLite

# Pure functions only: no side effects, no file or pointer access, no configuration.
SQLITE_FUNCTIONS = frozenset("""
    abs avg changes char coalesce count cume_dist date datetime dense_rank first_value format glob
    group_concat hex ifnull iif instr julianday lag last_value lead length like likelihood likely lower
    ltrim max min nth_value ntile nullif percent_rank printf quote rank replace round row_number rtrim sign
    soundex strftime substr substring sum time total trim typeof unicode unixepoch unlikely upper
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod pi
    pow power radians sin sinh sqrt tan tanh trunc
    json json_array json_array_length json_extract json_group_array json_group_object json_object
    json_quote json_type json_valid json_each json_tree
    string_agg concat concat_ws octet_length random sqlite_version
""".split())

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _authorizer(action, arg1, arg2, _db, _trigger):
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SQLITE_FUNCTIONS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def open_sqlite_readonly(path: str, timeout: float = 30) -> sqlite3.Connection:
    """A connection that cannot write and creates no file (mode=ro; the path is URI-escaped)."""
    conn = sqlite3.connect(readonly_sqlite_uri(path), uri=True, timeout=timeout, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # "file is not a database" here
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _run_sqlite(path, query, timeout, max_rows, max_bytes) -> QueryResult:
    if path != ":memory:" and not os.path.isfile(path):
        raise DatabaseOpenError(f"no database at {path} (create it with `tradebot init`)")
    try:
        conn = open_sqlite_readonly(path)
    except sqlite3.Error as exc:
        raise DatabaseOpenError(f"cannot open {path} read-only: {exc}") from None
    deadline = time.monotonic() + timeout
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.set_authorizer(_authorizer)
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            cur = conn.execute(query)
            columns = [d[0] for d in cur.description or []]
            rows, truncated = _collect(cur.fetchmany, max_rows, max_bytes)
        except sqlite3.ProgrammingError as exc:  # "You can only execute one statement at a time."
            raise ReadOnlyViolation(f"one statement only ({exc})") from None
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "not authorized" in message or "prohibited" in message:
                raise ReadOnlyViolation(f"only reads are allowed ({message})") from None
            if "interrupted" in message and time.monotonic() > deadline:
                raise QueryError(f"query stopped after {timeout:g} s (time limit)") from None
            raise QueryError(f"query failed: {_first_line(message)}") from None
        return QueryResult(columns, rows, truncated)
    finally:
        conn.close()


def _collect(fetchmany, max_rows, max_bytes) -> tuple[list[tuple], bool]:
    rows: list[tuple] = []
    size = 0
    while True:
        batch = fetchmany(500)
        if not batch:
            return rows, False
        for row in batch:
            size += sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)
            if len(rows) >= max_rows or size > max_bytes:
                return rows, True
            rows.append(row)


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else "unknown error"


# ---------------------------------------------------------------- PostgreSQL


def readonly_role_name(user: str) -> str:
    return f"{user}_readonly"[:63]


_PG_FUNCTION_BODY = f"""
CREATE OR REPLACE FUNCTION {PG_SCHEMA}.select_json(q text, max_rows integer, max_bytes bigint)
RETURNS SETOF json LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    c refcursor;
    r record;
    j json;
    n integer := 0;
    total bigint := 0;
BEGIN
    -- OPEN ... FOR EXECUTE parses exactly one statement and only opens row-returning queries.
    OPEN c NO SCROLL FOR EXECUTE q;
    LOOP
        FETCH c INTO r;
        EXIT WHEN NOT FOUND;
        j := row_to_json(r);
        n := n + 1;
        total := total + octet_length(j::text);
        IF n > max_rows OR total > max_bytes THEN
            RETURN NEXT NULL;  -- marks a truncated result
            EXIT;
        END IF;
        RETURN NEXT j;
    END LOOP;
    CLOSE c;
END
$fn$
"""


def setup_postgres(database) -> str | None:
    """Called by `migrate()` on PostgreSQL: the read-only role (when this user may create it), grants,
    and the query function. Returns the role name, or None when queries run as the bot's own role."""
    user = database.execute_sql("SELECT current_user").fetchone()[0]
    role = readonly_role_name(user)
    ident = _quote_ident(role)
    row = database.execute_sql(
        "SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    have_role = bool(row and row[0])
    if not have_role:
        try:
            with database.atomic():
                exists = database.execute_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                if not exists:
                    database.execute_sql(f"CREATE ROLE {ident} NOLOGIN NOINHERIT")
                database.execute_sql(f"GRANT {ident} TO {_quote_ident(user)}")
            have_role = True
        except Exception as exc:  # noqa: BLE001 - lacking CREATEROLE is a normal setup
            log.warning("PostgreSQL: cannot create the read-only role %s (%s); `tradebot admin sql` will run "
                        "as %s, see README (read-only SQL)", role, _first_line(exc), user)
    with database.atomic():
        database.execute_sql(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
        owner = ident if have_role else _quote_ident(user)
        database.execute_sql(f"ALTER SCHEMA {PG_SCHEMA} OWNER TO {owner}")
        database.execute_sql(_PG_FUNCTION_BODY)
        database.execute_sql(f"ALTER FUNCTION {PG_FUNCTION} OWNER TO {owner}")
        database.execute_sql(f"REVOKE ALL ON FUNCTION {PG_FUNCTION} FROM PUBLIC")
        database.execute_sql(f"GRANT EXECUTE ON FUNCTION {PG_FUNCTION} TO {_quote_ident(user)}")
        if have_role:
            schema = database.execute_sql("SELECT current_schema()").fetchone()[0]
            database.execute_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {_quote_ident(schema)} TO {ident}")
    return role if have_role else None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run_postgres(dsn, query, timeout, max_rows, max_bytes, shown_url="") -> QueryResult:
    import psycopg2

    ms = max(1, int(timeout * 1000))
    options = (f"-c default_transaction_read_only=on -c statement_timeout={ms} -c lock_timeout={ms} "
               f"-c idle_in_transaction_session_timeout={ms + 10_000}")
    try:
        conn = psycopg2.connect(**dsn, options=options, application_name="tradebot admin sql")
    except psycopg2.Error as exc:
        raise DatabaseOpenError(f"cannot open {shown_url}: {_first_line(exc)}") from None
    notes = []
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT p.proowner::regrole::text, current_user FROM pg_proc p WHERE p.oid = to_regprocedure(%s)",
                (PG_FUNCTION,),
            )
            found = cur.fetchone()
            if found is None:
                raise QueryError("this database is not prepared for read-only queries: run `tradebot db migrate`")
            if found[0] == found[1]:
                notes.append(f"warning: no read-only role {readonly_role_name(found[1])!r}: the query runs as "
                             f"{found[1]!r} (read-only, but functions such as pg_terminate_backend are not "
                             "blocked); see README, read-only SQL")
            try:
                cur.execute(f"SELECT j::text FROM {PG_SCHEMA}.select_json(%s, %s, %s) AS j",
                            (query, max_rows, max_bytes))
                raw = cur.fetchall()
            except psycopg2.Error as exc:
                raise _pg_error(exc, timeout) from None
    finally:
        conn.rollback()
        conn.close()
    truncated = bool(raw) and raw[-1][0] is None
    decoded = [json.loads(r[0], parse_float=Decimal, object_pairs_hook=_Obj) for r in raw if r[0] is not None]
    columns = [k for k, _ in decoded[0]] if decoded else []
    rows = [tuple(_py_value(v) for _, v in obj) for obj in decoded]
    return QueryResult(columns, rows, truncated, notes)


# SQLSTATEs that mean "the database refused this as not read-only".
_REFUSED = {
    "25006": "the database refused a write (read-only transaction)",
    "42501": "permission denied",
    "42P11": "only one row-returning statement (SELECT, WITH, VALUES, TABLE) is allowed",
    "0A000": "not supported in a read-only query",
    "2D000": "no transaction control in a query",
}


def _pg_error(exc, timeout) -> Exception:
    code = getattr(exc, "pgcode", None)
    message = _first_line(getattr(exc, "pgerror", None) or exc).removeprefix("ERROR:").strip()
    if code in _REFUSED:
        return ReadOnlyViolation(f"{_REFUSED[code]}: {message}")
    if code == "57014":
        return QueryError(f"query stopped after {timeout:g} s (statement timeout)")
    if code == "55P03":
        return QueryError(f"query stopped: waited too long for a lock ({message})")
    return QueryError(f"query failed: {message}")


class _Obj(list):
    """A JSON object kept as ordered (key, value) pairs: column order and duplicate names survive."""


_ISO_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?([+-]\d\d(:\d\d)?)?")


def _py_value(value):
    """JSON back to what psycopg2 would have returned for the common types."""
    if isinstance(value, str) and _ISO_TS.fullmatch(value):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, list):  # json/jsonb columns and arrays: shown as JSON text
        return json.dumps(_plain(value), default=str)
    return value


def _plain(value):
    if isinstance(value, _Obj):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
