"""Times on the database's clock (PostgreSQL), as naive UTC like every other column: hosts need not agree."""

from __future__ import annotations

from .. import db as dbmod

# now() is the transaction's start; clock_timestamp() the statement's (used where a transaction may be old)
NOW = "(now() AT TIME ZONE 'UTC')"
CLOCK = "(clock_timestamp() AT TIME ZONE 'UTC')"


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def after(millis_param: str = "%s", base: str = NOW) -> str:
    """`base + <param> milliseconds` (the parameter is an int of milliseconds)."""
    return f"({base} + {millis_param} * interval '1 millisecond')"


def execute(sql: str, params=()):
    return dbmod.db.execute_sql(sql, params)
