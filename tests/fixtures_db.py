"""Database fixtures: a fresh migrated SQLite file per test, and PostgreSQL when available."""

from __future__ import annotations

import os
import uuid

import pytest

from tradebot import db as dbmod


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'tradebot.db'}"


@pytest.fixture
def database(sqlite_url):
    """Models bound to a fresh, migrated SQLite database file."""
    database = dbmod.open_database(sqlite_url)
    dbmod.migrate()
    yield database
    dbmod.close_database()


def pg_url_or_skip() -> str:
    url = os.environ.get("TRADEBOT_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("TRADEBOT_TEST_PG_URL must be set under CI: PostgreSQL tests may not skip there")
        pytest.skip("TRADEBOT_TEST_PG_URL not set")
    return url


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL schema-isolated database URL (a new database per test)."""
    import psycopg2

    base = pg_url_or_skip()
    parsed = dbmod.parse_url(base)
    name = f"tb_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(**parsed.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    prefix = base.rsplit("/", 1)[0]
    yield f"{prefix}/{name}"
    dbmod.close_database()
    _drop_database(admin, name)
    admin.close()


def _drop_database(admin, name: str) -> None:
    """DROP ... WITH (FORCE), retried: it cannot terminate an autovacuum worker (a superuser process) that
    happens to be busy on the fresh database, and fails with InsufficientPrivilege until that one ends."""
    import time

    import psycopg2

    for attempt in range(50):
        try:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ObjectInUse):
            if attempt == 49:
                raise
            time.sleep(0.2)
