"""`tradebot admin ...`: users, approval and blocking, credentials, read-only SQL, key rotation."""

from __future__ import annotations

import re

import click

from ..ascii_digits import ascii_int
from ..instance_lock import InstanceLease, InstanceLocked
from ..readonly_sql import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_SECONDS, QueryError
from .common import (
    _config,
    _open_db,
    _open_db_readonly,
    clean_errors,
    fail,
    format_table,
    main,
)

# ---------------------------------------------------------------- admin


@main.group()
def admin():
    """Administer users and inspect the database."""


@admin.command("users")
@click.pass_context
@clean_errors
def admin_users(ctx):
    """List users with their pairs, equity and PnL."""
    from .. import admin as uc

    _open_db_readonly(_config(ctx))
    click.echo(format_table(uc.USER_COLUMNS, uc.list_users()))


@admin.command("user")
@click.argument("ref")
@click.pass_context
@clean_errors
def admin_user(ctx, ref):
    """Show one user: REF is a user id, a Telegram id or @username."""
    from .. import admin as uc

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
    from .. import services

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
    from .. import admin as uc

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
    from .. import admin as uc
    from ..services import sync_admins

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
    from .. import admin as uc

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
    from .. import admin as uc

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
    from ..readonly_sql import run_readonly

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


def _live_workers() -> int:
    from .. import db as dbmod

    if dbmod.is_sqlite():
        return 0
    from ..ha.registry import live_workers

    return live_workers()


@admin.command("rotate-key")
@click.pass_context
@clean_errors
def admin_rotate_key(ctx):
    """Re-encrypt every stored secret under a new key; the old key file is kept as a backup."""
    from .. import admin as uc
    from ..vault import Vault

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
    workers = _live_workers()
    if workers:  # PostgreSQL workers hold pair leases, not this lease (and none starts while we hold it)
        lease.release()
        fail(f"refused: {workers} `tradebot run` worker(s) use this database; stop them first, then rotate the key",
             code=1)
    try:
        tokens = uc.credential_tokens()
        backup = vault.rotate(tokens, uc.save_credential_tokens)
    finally:
        lease.release()
    click.echo(f"re-encrypted {len(tokens)} secret(s) under a new key; old key file kept at {backup}")
