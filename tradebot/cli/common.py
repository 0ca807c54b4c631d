"""What every `tradebot` command shares: the top-level click group, one-line operator errors, opening the
database."""

from __future__ import annotations

import functools
import sys

import click

from .. import __version__, private
from .. import db as dbmod
from ..app import StartupError
from ..config import ConfigError, load_config
from ..instance_lock import InstanceLocked
from ..readonly_sql import ReadOnlyViolation
from ..vault import VaultError

# Telegram user ids are positive and the column is a signed 64-bit integer.
TELEGRAM_ID = click.IntRange(1, 2**63 - 1)


def fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def clean_errors(func):
    """Known operator errors become one line and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc))
        except (VaultError, dbmod.DatabaseURLError) as exc:
            fail(str(exc))
        except InstanceLocked as exc:
            fail(str(exc), code=1)
        except ReadOnlyViolation as exc:
            fail(f"refused: {exc}")
        except dbmod.DatabaseOpenError as exc:
            fail(f"database.url: {exc}")
        except StartupError as exc:
            fail(str(exc), code=1)

    return wrapper


def _config(ctx: click.Context):
    return load_config(ctx.obj.get("config_path"))


def _open_db_only(cfg):
    try:
        dbmod.open_database(cfg.database_url)
    except dbmod.DatabaseOpenError as exc:
        fail(f"database.url: {exc}")
    except Exception as exc:  # driver errors: unreachable server, bad credentials, unwritable file
        fail(f"database.url: cannot open {_redact_url(cfg.database_url)}: {str(exc).strip().splitlines()[0]}")


def _open_db(cfg):
    _open_db_only(cfg)
    dbmod.migrate()
    private.restrict_sqlite_files(cfg.database_url)


def _open_db_readonly(cfg):
    """Read-only commands: nothing is created or migrated (see db.open_database_readonly)."""
    dbmod.open_database_readonly(cfg.database_url)


_redact_url = dbmod.redact_url


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) for row in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradebot")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="TRADEBOT_CONFIG",
              help="Config file (default: $TRADEBOT_CONFIG or ~/.config/tradebot/config.toml).")
@click.pass_context
def main(ctx, config_path):
    """tradebot: a self-hosted multi-user crypto trading bot driven from Telegram."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    private.restrict_umask()  # database, logs, key and backups: 0600 even in a 0755 data directory
