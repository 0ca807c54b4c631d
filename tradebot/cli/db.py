"""`tradebot db ...`: migrate, backup, schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

from .. import db as dbmod
from .. import private
from .common import (
    _config,
    _open_db_only,
    clean_errors,
    fail,
    main,
)

# ---------------------------------------------------------------- db


@main.group("db")
def db_group():
    """Database maintenance."""


@db_group.command("migrate")
@click.pass_context
@clean_errors
def db_migrate(ctx):
    """Apply pending schema migrations."""
    cfg = _config(ctx)
    _open_db_only(cfg)
    applied = dbmod.migrate()
    click.echo(f"applied migrations: {applied}" if applied else f"up to date (version {dbmod.schema_version()})")


@db_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
@clean_errors
def db_backup(ctx, file):
    """Copy the SQLite database to FILE while the bot runs (prints the pg_dump command for PostgreSQL)."""
    cfg = _config(ctx)
    if not dbmod.parse_url(cfg.database_url).is_sqlite:
        click.echo("PostgreSQL: back up with")
        click.echo("  " + dbmod.pg_dump_command(cfg.database_url, file))
        return
    source = Path(dbmod.parse_url(cfg.database_url).path)
    if not source.exists():
        fail(f"no database at {cfg.database_url}", code=1)
    if Path(file).expanduser().resolve() == source.resolve():
        fail(f"{file} is the database itself; choose another file")
    try:
        dest = dbmod.backup_sqlite(cfg.database_url, Path(file).expanduser())
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror or exc}", code=1)
    except sqlite3.Error as exc:
        fail(f"cannot back up to {file}: {exc}", code=1)
    private.make_private(dest)  # an existing file that was overwritten keeps its old mode otherwise
    click.echo(f"backup written to {dest}")


@db_group.command("schema")
def db_schema():
    """Print schema.sql as generated from the models (tables) and the packaged views."""
    from ..schema_gen import render

    click.echo(render(), nl=False)
