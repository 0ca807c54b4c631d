"""`tradebot init` (first configuration), `tradebot run` and `tradebot status`."""

from __future__ import annotations

import os
import re
import sys
from importlib import resources
from pathlib import Path

import click

from .. import db as dbmod
from .. import private
from ..ascii_digits import ascii_int
from ..config import default_config_path, load_config, token_problem
from ..vault import generate_key_file
from .common import (
    TELEGRAM_ID,
    _config,
    _open_db,
    _redact_url,
    clean_errors,
    fail,
    main,
)

# ---------------------------------------------------------------- init


def _example_config() -> str:
    packaged = resources.files("tradebot").joinpath("config.example.toml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "config.example.toml").read_text(encoding="utf-8")


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
    from .. import admin as uc
    from ..vault import Vault, cannot_decrypt_message

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
    from ..app import run_forever

    cfg = _config(ctx)
    sys.exit(run_forever(cfg))


@main.command()
@click.pass_context
@clean_errors
def status(ctx):
    """Does a `tradebot run` hold the database, and is it healthy? Exit 0 healthy, 1 not running or stale.
    Reads the database read-only (never migrates or writes)."""
    from ..health import format_status, read_status

    cfg = _config(ctx)
    try:
        st = read_status(cfg.database_url)
    except Exception as exc:  # noqa: BLE001 - driver errors: one line
        fail(f"database.url: cannot read {_redact_url(cfg.database_url)}: {str(exc).strip().splitlines()[0]}",
             code=1)
    if not st.running:  # PostgreSQL workers (HA) hold no single-instance lease: list them instead
        from ..ha.status import format_cluster, read_cluster

        try:
            cluster = read_cluster(cfg.database_url)
        except Exception as exc:  # noqa: BLE001
            fail(f"database.url: cannot read {_redact_url(cfg.database_url)}: {str(exc).strip().splitlines()[0]}",
                 code=1)
        if cluster is not None:
            for line in format_cluster(cluster):
                click.echo(line)
            sys.exit(0 if cluster.live else 1)
    for line in format_status(st):
        click.echo(line)
    sys.exit(0 if st.running else 1)
