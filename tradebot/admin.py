"""Administrator use cases shared by `tradebot admin` and the admins' chat commands."""

from __future__ import annotations

from decimal import Decimal

from .ascii_digits import ascii_int
from .models import ExchangeCredential, User, UserConfig, UserState, db

USER_COLUMNS = ["id", "telegram id", "username", "status", "pairs", "active pairs", "equity", "PnL"]


class AdminError(Exception):
    pass


def list_users() -> list[tuple]:
    cursor = db.execute_sql(
        "SELECT user_id, telegram_id, username, status, pairs, active_pairs, total_equity, total_pnl "
        "FROM user_overview ORDER BY user_id"
    )
    # The view's exact decimal text as it is: `admin users` and `admin sql` show the same numbers.
    return [(r[0], r[1], r[2] or "", r[3], r[4], r[5], r[6], r[7]) for r in cursor.fetchall()]


def find_user(ref: str) -> User:
    """`ref` is a database id, a Telegram id or @username."""
    from . import services

    ref = ref.strip()
    user = None
    if ref.startswith("@"):
        try:
            user = services.find_user(ref)
        except services.Ambiguous as exc:
            raise AdminError(str(exc)) from None
    elif (number := ascii_int(ref, signed=True, max_digits=20)) is not None and -(2**63) <= number < 2**63:
        # ASCII digits only ('²' passes isdigit() but not int()); beyond 64 bits: no such user
        user = User.get_or_none(User.id == number) or User.get_or_none(User.telegram_id == number)
    if user is None:
        raise AdminError(f"no user {ref!r} (use a user id, a Telegram id or @username)")
    return user


def user_detail(user: User) -> dict:
    pairs = []
    for cfg in UserConfig.select().where(UserConfig.user == user).order_by(UserConfig.id):
        state = UserState.get_or_none(UserState.config == cfg)
        pairs.append(
            {
                "id": cfg.id,
                "exchange": cfg.exchange,
                "symbol": cfg.symbol,
                "budget": cfg.budget,
                "trading": cfg.is_trading,
                "status": state.status if state else "stopped",
                "equity": state.equity if state else cfg.budget,
                "pnl": (state.equity - state.balance) if state else Decimal(0),
            }
        )
    creds = [
        {"exchange": c.exchange, "network": c.network}
        for c in ExchangeCredential.select().where(ExchangeCredential.user == user)
    ]
    return {
        "id": user.id,
        "telegram_id": user.telegram_id,
        "username": user.username,
        "status": user.status,
        "admin": user.is_admin,
        "created_at": user.created_at,
        "exchanges": creds,
        "pairs": pairs,
    }


def approve(telegram_id: int) -> tuple[User, bool]:
    """Activate a user; an id that has not written to the bot yet is pre-approved."""
    from . import services

    if User.get_or_none(User.telegram_id == telegram_id) is None:
        return User.create(telegram_id=telegram_id, status="active"), True
    return services.approve_user(telegram_id), False


def block(telegram_id: int) -> tuple[User, int]:
    """Block a user and stop all their pairs (the running engine drops their jobs on its next cycle)."""
    from . import services

    if User.get_or_none(User.telegram_id == telegram_id) is None:
        return User.create(telegram_id=telegram_id, status="blocked"), 0
    active = UserConfig.select().join(User).where(
        (User.telegram_id == telegram_id) & (UserConfig.is_trading == True)  # noqa: E712
    ).count()
    try:
        user = services.block_user(telegram_id)
    except services.ServiceError as exc:
        raise AdminError(str(exc)) from None
    UserState.update(status="stopped").where(UserState.user == user).execute()
    return user, active


def credential_tokens() -> dict[str, str]:
    """Every encrypted value, keyed '<id>:<column>', for key rotation."""
    out = {}
    for cred in ExchangeCredential.select():
        if cred.api_key_enc:
            out[f"{cred.id}:api_key_enc"] = cred.api_key_enc
        if cred.secret_enc:
            out[f"{cred.id}:secret_enc"] = cred.secret_enc
    return out


def save_credential_tokens(tokens: dict[str, str]) -> None:
    with db.atomic():
        for key, token in tokens.items():
            ident, column = key.split(":")
            ExchangeCredential.update({getattr(ExchangeCredential, column): token}).where(
                ExchangeCredential.id == int(ident)
            ).execute()


def stored_secrets() -> list[str]:
    """Every encrypted value in the database (the canary set for a key check)."""
    return list(credential_tokens().values())


def unblock(ref: str) -> tuple[User, str]:
    """As the chat's /unblock: the user becomes active and is told through the outbox. `ref` is a Telegram id
    or @username. Returns (user, previous status)."""
    from . import services

    ref = ref.strip()
    key: int | str = ref.lstrip("@")
    if ref.isascii() and ref.isdigit():
        key = int(ref)
    elif not (ref.startswith("@") and key):
        raise AdminError(f"{ref!r}: give a Telegram id or @username")
    user = services.find_user(key)
    if user is None:
        raise AdminError(f"no user {ref!r} (use a Telegram id or @username)")
    previous = user.status
    return services.unblock_user(user.telegram_id), previous


def forget_credentials() -> list[tuple[User, list[str], list[str]]]:
    """Wipes every stored exchange secret (paper connections have none and stay), stops the pairs that
    traded with them and tells each user through the outbox. For a lost encryption key: the secrets can no
    longer be decrypted, and users must /connect again. Returns (user, exchanges, stopped symbols) per user."""
    from . import events
    from .models import utcnow

    out = []
    with db.atomic():
        creds = list(
            ExchangeCredential.select().where(
                ExchangeCredential.api_key_enc.is_null(False) | ExchangeCredential.secret_enc.is_null(False)
            )
        )
        by_user: dict[int, list[ExchangeCredential]] = {}
        for cred in creds:
            by_user.setdefault(cred.user_id, []).append(cred)
        for user_id, items in sorted(by_user.items()):
            exchanges = sorted(c.exchange for c in items)
            pairs = UserConfig.select().where(
                (UserConfig.user == user_id) & UserConfig.exchange.in_(exchanges) & (UserConfig.is_trading == True)  # noqa: E712
            )
            stopped = [p.symbol for p in pairs]
            ids = [p.id for p in pairs]
            if ids:
                UserConfig.update(is_trading=False, updated_at=utcnow()).where(UserConfig.id.in_(ids)).execute()
                UserState.update(status="stopped").where(UserState.config.in_(ids)).execute()
            ExchangeCredential.delete().where(ExchangeCredential.id.in_([c.id for c in items])).execute()
            events.emit(user_id, "credentials_forgotten", {"exchanges": exchanges, "stopped": stopped})
            out.append((User.get_by_id(user_id), exchanges, stopped))
    return out
