"""`tradebot` command line: init, run, admin, db (and backtest)."""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import sys
from importlib import resources
from pathlib import Path

import click

from . import __version__, private
from . import db as dbmod
from .app import StartupError
from .ascii_digits import ascii_int
from .config import ConfigError, default_config_path, load_config, token_problem
from .instance_lock import InstanceLease, InstanceLocked
from .readonly_sql import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_SECONDS, QueryError, ReadOnlyViolation
from .vault import VaultError, generate_key_file

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


# ---------------------------------------------------------------- init


def _example_config() -> str:
    packaged = resources.files("tradebot").joinpath("config.example.toml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "config.example.toml").read_text(encoding="utf-8")


def _set_toml(text: str, section: str | None, key: str, value: str) -> str:
    """Replace `key = ...` inside [section] (or at top level) of the example config."""
    lines = text.splitlines()
    current = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]")
            continue
        if current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    raise RuntimeError(f"config.example.toml lacks {section}.{key}")


def _admin_ids(raw: str) -> tuple[int, ...]:
    """The interactive answer: Telegram user ids separated by commas or spaces (re-asked if not numbers)."""
    parts = [x for x in re.split(r"[,\s]+", raw.strip()) if x]
    bad = [x for x in parts if not 0 < (ascii_int(x) or 0) < 2**63]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not a Telegram user id (a number; ask @userinfobot)")
    return tuple(ascii_int(x) for x in parts)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@main.command()
@click.option("--non-interactive", is_flag=True, help="Do not prompt; take everything from flags.")
@click.option("--telegram-token", help="Bot token from @BotFather.")
@click.option("--admin-id", "admin_ids", multiple=True, type=TELEGRAM_ID, help="Telegram id of an admin (repeatable).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory (database, key, logs).")
@click.option("--force", is_flag=True, help="Overwrite an existing config file (never the key file).")
@click.pass_context
@clean_errors
def init(ctx, non_interactive, telegram_token, admin_ids, data_dir, force):
    """Write a config file, create the data directory, the encryption key and the database."""
    config_path = Path(ctx.obj.get("config_path") or default_config_path()).expanduser()
    # Refuse before asking anything: answers typed into a command that then refuses are wasted.
    if config_path.exists() and not force:
        fail(f"config file {config_path} already exists (use --force to overwrite it; the key file is never overwritten)")
    if telegram_token is not None and telegram_token.strip():
        problem = token_problem(telegram_token)
        if problem:
            fail(f"--telegram-token: {problem}")
    default_data = (
        os.environ.get("TRADEBOT_DATA_DIR")
        or (str(config_path.parent) if ctx.obj.get("config_path") else None)
        or str(Path("~/.local/share/tradebot").expanduser())
    )
    if not non_interactive:
        # The README's order: token, admin id, data directory.
        if telegram_token is None:
            telegram_token = click.prompt(
                "Telegram bot token (from @BotFather; empty to set later)", default="", show_default=False,
                # getpass warns (and echoes anyway) when stdin is not a terminal, e.g. piped answers
                hide_input=sys.stdin.isatty(), value_proc=_token_answer,
            )
        if not admin_ids:
            admin_ids = click.prompt("Your Telegram user id (admin; empty to skip)", default="", show_default=False,
                                     value_proc=_admin_ids)
        if data_dir is None:
            data_dir = click.prompt("Data directory", default=default_data)
    data_path = Path(data_dir or default_data).expanduser().resolve()
    # The data directory first: if it cannot be made, fail before the config file is written (or replaced).
    try:
        data_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        fail(f"data directory {data_path}: cannot create it ({exc.strerror or exc})")
    if not os.access(data_path, os.W_OK | os.X_OK):
        fail(f"data directory {data_path}: not writable")

    text = _example_config()
    text = _set_toml(text, None, "data_dir", _toml_str(str(data_path)))
    text = _set_toml(text, "telegram", "token", _toml_str((telegram_token or "").strip()))
    text = _set_toml(text, "telegram", "admin_ids", "[" + ", ".join(str(i) for i in admin_ids) + "]")
    config_path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and checked first: a refusal below leaves any existing config as it was.
    staged = config_path.with_name(config_path.name + ".new")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the bot token
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    try:
        cfg = load_config(staged)
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (cfg.data_dir / "logs").mkdir(exist_ok=True)
        _open_db(cfg)
        _check_key_for_init(cfg)
    except BaseException:
        staged.unlink(missing_ok=True)
        dbmod.close_database()
        raise
    os.replace(staged, config_path)
    os.chmod(config_path, 0o600)
    created_key = generate_key_file(cfg.key_file)
    dbmod.close_database()
    private.restrict_sqlite_files(cfg.database_url)
    click.echo(f"config:   {config_path}")
    click.echo(f"data:     {cfg.data_dir}")
    click.echo(f"key file: {cfg.key_file} ({'created, mode 0600' if created_key else 'kept existing'})")
    click.echo(f"database: {_redact_url(cfg.database_url)}")
    if not telegram_token:
        click.echo("next: put your bot token (from @BotFather) in the config, then run `tradebot run`")
    else:
        click.echo("next: tradebot run")


def _token_answer(raw: str) -> str:
    """The interactive token answer: empty (set it later) or a well-formed token (re-asked otherwise)."""
    raw = raw.strip()
    problem = token_problem(raw) if raw else None
    if problem:
        raise click.BadParameter(problem)
    return raw


def _check_key_for_init(cfg) -> None:
    """Never create (or keep) a key that cannot decrypt the secrets the database already holds."""
    from . import admin as uc
    from .vault import Vault, cannot_decrypt_message

    stored = uc.stored_secrets()
    if not stored:
        return
    if not os.environ.get("TRADEBOT_SECRET_KEY") and not cfg.key_file.exists():
        fail(
            f"encryption key file {cfg.key_file} is missing but the database holds {len(stored)} encrypted "
            "exchange secret(s): a new key could not decrypt them. Restore the key file (or set "
            "TRADEBOT_SECRET_KEY), or wipe them with `tradebot admin forget-credentials`, then run init again"
        )
    vault = Vault.load(cfg.key_file)
    if all(not vault.can_decrypt(token) for token in stored):
        fail(cannot_decrypt_message(vault.describe(), len(stored)))


# ---------------------------------------------------------------- run


@main.command()
@click.pass_context
@clean_errors
def run(ctx):
    """Run the bot: Telegram front and trading engine, until SIGINT/SIGTERM."""
    from .app import run_forever

    cfg = _config(ctx)
    sys.exit(run_forever(cfg))


@main.command()
@click.pass_context
@clean_errors
def status(ctx):
    """Does a `tradebot run` hold the database, and is it healthy? Exit 0 healthy, 1 not running or stale.
    Reads the database read-only (never migrates or writes)."""
    from .health import format_status, read_status

    cfg = _config(ctx)
    try:
        st = read_status(cfg.database_url)
    except Exception as exc:  # noqa: BLE001 - driver errors: one line
        fail(f"database.url: cannot read {_redact_url(cfg.database_url)}: {str(exc).strip().splitlines()[0]}",
             code=1)
    for line in format_status(st):
        click.echo(line)
    sys.exit(0 if st.running else 1)


# ---------------------------------------------------------------- admin


@main.group()
def admin():
    """Administer users and inspect the database."""


@admin.command("users")
@click.pass_context
@clean_errors
def admin_users(ctx):
    """List users with their pairs, equity and PnL."""
    from . import admin as uc

    _open_db_readonly(_config(ctx))
    click.echo(format_table(uc.USER_COLUMNS, uc.list_users()))


@admin.command("user")
@click.argument("ref")
@click.pass_context
@clean_errors
def admin_user(ctx, ref):
    """Show one user: REF is a user id, a Telegram id or @username."""
    from . import admin as uc

    cfg = _config(ctx)
    _open_db_readonly(cfg)  # a read-only command: nothing is migrated or written
    try:
        detail = uc.user_detail(uc.find_user(ref))
    except uc.AdminError as exc:
        fail(str(exc), code=1)
    detail["admin"] = detail["telegram_id"] in set(cfg.telegram.admin_ids or ())  # the config's word, not a stale flag
    for key in ("id", "telegram_id", "username", "status", "admin", "created_at"):
        click.echo(f"{key:12} {detail[key]}")
    exchanges = ", ".join(f"{c['exchange']} ({c['network']})" for c in detail["exchanges"]) or "none"
    click.echo(f"{'exchanges':12} {exchanges}")
    rows = [
        (p["id"], p["exchange"], p["symbol"], _exact(p["budget"]), p["status"], _exact(p["equity"]), _exact(p["pnl"]))
        for p in detail["pairs"]
    ]
    click.echo(format_table(["pair id", "exchange", "symbol", "budget", "status", "equity", "PnL"], rows))


def _telegram_id(ref: str) -> int:
    """A Telegram id (digits) or the id of the one user called @name (refused when several are)."""
    from . import services

    ref = ref.strip()
    if ref.startswith("@"):
        try:
            user = services.find_user(ref)
        except services.Ambiguous as exc:
            fail(str(exc), code=1)
        if user is None:
            fail(f"no user {ref} (a username is known once its user has written to the bot)", code=1)
        return user.telegram_id
    if not re.fullmatch(r"[0-9]+", ref):
        fail(f"{ref!r} is not a Telegram user id or @username")
    number = ascii_int(ref, max_digits=30)  # int() of 5000 digits raises ValueError
    if number is None or not 0 < number < 2**63:
        fail(f"{ref[:30]} is out of range for a Telegram user id (1 to {2**63 - 1})")
    return number


def _exact(value) -> str:
    """Money as the views print it: exact plain decimal text, no trailing zeros ('1000', '999.60981514')."""
    from decimal import Decimal

    value = Decimal(value)
    text = format(value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@admin.command("approve")
@click.argument("ref")
@click.pass_context
@clean_errors
def admin_approve(ctx, ref):
    """Let a user in (approval or allowlist mode). REF: a Telegram id or @username."""
    from . import admin as uc

    _open_db(_config(ctx))
    telegram_id = _telegram_id(ref)
    user, created = uc.approve(telegram_id)
    click.echo(f"approved {telegram_id}" + (" (pre-approved; not registered yet)" if created else ""))


@admin.command("block")
@click.argument("ref")
@click.pass_context
@clean_errors
def admin_block(ctx, ref):
    """Block a user and stop all their pairs. REF: a Telegram id or @username."""
    from . import admin as uc
    from .services import sync_admins

    cfg = _config(ctx)
    _open_db(cfg)
    telegram_id = _telegram_id(ref)
    if telegram_id in (cfg.telegram.admin_ids or []):
        # as /block in chat: an admin from the config would be re-activated on their next message anyway
        fail(f"{telegram_id} is an admin (telegram.admin_ids); remove it from the config first", code=1)
    sync_admins(cfg.telegram.admin_ids or ())  # admin rights are the config's, not a stale users.is_admin
    try:
        _user, stopped = uc.block(telegram_id)
    except uc.AdminError as exc:
        fail(str(exc), code=1)
    click.echo(f"blocked {telegram_id}; stopped {stopped} pair(s)")


@admin.command("unblock")
@click.argument("ref", metavar="TELEGRAM_ID|@NAME")
@click.pass_context
@clean_errors
def admin_unblock(ctx, ref):
    """Let a blocked user back in (as /unblock in the chat; they are told there)."""
    from . import admin as uc

    _open_db(_config(ctx))
    telegram_id = _telegram_id(ref)  # an ambiguous @name is refused with the matching ids, as in the chat
    try:
        user, previous = uc.unblock(str(telegram_id))
    except uc.AdminError as exc:
        fail(str(exc), code=1)
    who = f"{user.telegram_id}" + (f" (@{user.username})" if user.username else "")
    if previous == "active":
        click.echo(f"{who} is not blocked (already active)")
        return
    click.echo(f"unblocked {who}; their pairs stay stopped; they are told in the chat")


@admin.command("forget-credentials")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@clean_errors
def admin_forget_credentials(ctx, yes):
    """Wipe every stored exchange API key (after losing the encryption key): their pairs stop, the users
    are told to /connect again. Paper connections are kept."""
    from . import admin as uc

    _open_db(_config(ctx))
    count = len(uc.stored_secrets())
    if not count:
        click.echo("no stored exchange secrets; nothing to do")
        return
    if not yes:
        click.confirm(f"wipe {count} stored exchange secret(s), stop their pairs and tell the users?",
                      abort=True, err=True)
    done = uc.forget_credentials()
    stopped = sum(len(s) for _u, _e, s in done)
    click.echo(f"wiped the exchange keys of {len(done)} user(s); stopped {stopped} pair(s); "
               "the users are told to /connect again")


@admin.command("sql")
@click.argument("query")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=DEFAULT_TIMEOUT_SECONDS, show_default=True,
              help="Stop the query after this many seconds.")
@click.option("--max-rows", type=click.IntRange(1, 10_000_000), default=DEFAULT_MAX_ROWS, show_default=True,
              help="Print at most this many rows.")
@click.pass_context
@clean_errors
def admin_sql(ctx, query, timeout, max_rows):
    """Run one read-only query (SELECT, WITH, VALUES) and print the result as a table.

    The database enforces it: a read-only connection (SQLite) or a read-only role and transaction
    (PostgreSQL). Nothing is migrated or created."""
    from .readonly_sql import run_readonly

    cfg = _config(ctx)
    try:
        result = run_readonly(cfg.database_url, query, timeout=timeout, max_rows=max_rows)
    except QueryError as exc:
        fail(str(exc), code=1)
    for note in result.notes:
        click.echo(note, err=True)
    click.echo(format_table(result.columns, result.rows))
    if result.truncated:
        click.echo(f"(truncated after {len(result.rows)} rows; use --max-rows or a LIMIT)")


@admin.command("rotate-key")
@click.pass_context
@clean_errors
def admin_rotate_key(ctx):
    """Re-encrypt every stored secret under a new key; the old key file is kept as a backup."""
    from . import admin as uc
    from .vault import Vault

    cfg = _config(ctx)
    _open_db(cfg)
    vault = Vault.load(cfg.key_file)
    # A running bot keeps the old key (and would encrypt new /connect keys with it): hold the instance
    # lease for the whole rotation, so it is refused while `tradebot run` lives and no run starts meanwhile.
    lease = InstanceLease(cfg.database_url, cfg.database.lease_seconds)
    try:
        lease.acquire()
    except InstanceLocked as exc:
        fail(f"refused: {exc}; stop `tradebot run` first, then rotate the key", code=1)
    try:
        tokens = uc.credential_tokens()
        backup = vault.rotate(tokens, uc.save_credential_tokens)
    finally:
        lease.release()
    click.echo(f"re-encrypted {len(tokens)} secret(s) under a new key; old key file kept at {backup}")


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
    from .schema_gen import render

    click.echo(render(), nl=False)


def _register_optional_commands():
    try:
        from .backtest.cli import backtest_command
    except ImportError:
        return
    main.add_command(backtest_command, "backtest")


_register_optional_commands()
