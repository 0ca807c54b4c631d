"""The rows behind the most frequent chat commands, one prepared statement each (tradebot/prepared.py).

Every message looks its sender up, and /status, /listpairs and the Refresh buttons read all of a user's
pairs with their states and credentials: built with peewee that was five statements and most of a reply's
CPU, which twenty users at once share with 20,000 pairs' cycles.
"""

from __future__ import annotations

from .. import prepared
from ..models import ExchangeCredential, User, UserConfig, UserState, db


def _user_sql(database) -> tuple[str, list]:
    cols, part = prepared.columns("u", User)
    return f"SELECT {', '.join(cols)} FROM users u WHERE u.telegram_id = {database.param}", [part]


def user_by_telegram_id(telegram_id: int) -> User | None:
    sql, layout = prepared.statement("user_by_telegram_id", _user_sql)
    row = db.obj.execute_sql(sql, (int(telegram_id),)).fetchone()
    return None if row is None else prepared.models_of(row, layout)[0][0]


def _pairs_sql(database) -> tuple[str, list]:
    cols, layout = [], []
    for alias, model in (("c", UserConfig), ("s", UserState), ("x", ExchangeCredential)):
        c, part = prepared.columns(alias, model)
        cols.extend(c)
        layout.append(part)
    sql = (
        f"SELECT {', '.join(cols)}, "
        "(SELECT p.side FROM positions p WHERE p.config_id = c.id AND p.status = 'open' "
        "ORDER BY p.id DESC LIMIT 1) "
        "FROM user_configs c "
        "LEFT JOIN user_states s ON s.config_id = c.id "
        "LEFT JOIN exchange_credentials x ON x.user_id = c.user_id AND x.exchange = c.exchange "
        f"WHERE c.user_id = {database.param} ORDER BY c.created_at, c.id"
    )
    return sql, layout


def pairs_with_rows(user_id: int) -> list[tuple[UserConfig, UserState | None, ExchangeCredential | None, str | None]]:
    """A user's pairs in the order they were added, each with its state row, its exchange's credential and
    the side of its open position (None when flat)."""
    sql, layout = prepared.statement("pairs_with_rows", _pairs_sql)
    out = []
    for row in db.obj.execute_sql(sql, (int(user_id),)).fetchall():
        (cfg, state, cred), i = prepared.models_of(row, layout)
        out.append((cfg, state, cred, row[i]))
    return out
