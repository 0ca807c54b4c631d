"""The rows behind the most frequent chat commands, one prepared statement each (tradebot/prepared.py).

Every message looks its sender up, and /status, /listpairs and the Refresh buttons read all of a user's
pairs with their states and credentials: built with peewee that was five statements and most of a reply's
CPU, which twenty users at once share with 20,000 pairs' cycles.
"""

from __future__ import annotations

from decimal import Decimal

from .. import prepared
from ..models import ExchangeCredential, Position, Trade, User, UserConfig, UserState, db


def _models(sql: str, layout: list, params) -> list:
    """The model of each row of a one-model statement."""
    return [prepared.models_of(row, layout)[0][0] for row in db.obj.execute_sql(sql, params).fetchall()]


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


def _user_pairs_sql(database) -> tuple[str, list]:
    cols, part = prepared.columns("c", UserConfig)
    return (f"SELECT {', '.join(cols)} FROM user_configs c WHERE c.user_id = {database.param} "
            "ORDER BY c.created_at, c.id"), [part]


def user_pairs(user_id: int) -> list[UserConfig]:
    """A user's pairs in the order they were added (what /config, /position, /mystats and every command
    naming a symbol start from)."""
    sql, layout = prepared.statement("user_pairs", _user_pairs_sql)
    return _models(sql, layout, (int(user_id),))


def _credentials_sql(database) -> tuple[str, list]:
    cols, part = prepared.columns("x", ExchangeCredential)
    return (f"SELECT {', '.join(cols)} FROM exchange_credentials x WHERE x.user_id = {database.param} "
            "ORDER BY x.exchange"), [part]


def user_credentials(user_id: int) -> list[ExchangeCredential]:
    sql, layout = prepared.statement("user_credentials", _credentials_sql)
    return _models(sql, layout, (int(user_id),))


def _trade_figures_sql(database) -> tuple[str, list]:
    return f"SELECT t.config_id, t.pnl, t.fee FROM trades t WHERE t.user_id = {database.param}", []


def trade_figures(user_id: int) -> list[tuple[int | None, Decimal | None, Decimal | None]]:
    """(pair id or None for a removed pair, realized PnL or None, fee or None) of each of a user's fills:
    what /mystats adds up, without making a model of every fill (an active user has thousands)."""
    sql, _ = prepared.statement("trade_figures", _trade_figures_sql)
    pnl, fee = Trade.pnl.python_value, Trade.fee.python_value
    return [(c, None if p is None else pnl(p), None if f is None else fee(f))
            for c, p, f in db.obj.execute_sql(sql, (int(user_id),)).fetchall()]


def _open_positions_sql(database) -> tuple[str, list]:
    cols, part = prepared.columns("p", Position)
    return (f"SELECT {', '.join(cols)}, s.last_price FROM positions p "
            "LEFT JOIN user_states s ON s.config_id = p.config_id "
            f"WHERE p.user_id = {database.param} AND p.status = 'open' ORDER BY p.opened_at, p.id"), [part]


def open_positions(user_id: int) -> list[tuple[Position, Decimal | None]]:
    """A user's open positions, oldest first, each with its pair's last price (None: not known yet)."""
    sql, layout = prepared.statement("open_positions", _open_positions_sql)
    last = UserState.last_price.python_value
    out = []
    for row in db.obj.execute_sql(sql, (int(user_id),)).fetchall():
        (pos,), i = prepared.models_of(row, layout)
        out.append((pos, None if row[i] is None else last(row[i])))
    return out


def _notify_sql(database) -> tuple[str, list]:
    return f"SELECT u.notify FROM users u WHERE u.id = {database.param}", []


def notify_of(user_id: int) -> bool:
    """The user's trade-notification setting as stored now (the User the handler holds may be older)."""
    sql, _ = prepared.statement("notify_of", _notify_sql)
    row = db.obj.execute_sql(sql, (int(user_id),)).fetchone()
    return bool(row[0]) if row is not None else False


def _closed_sql(database) -> tuple[str, list]:
    cols, part = prepared.columns("p", Position)
    p = database.param
    return (f"SELECT {', '.join(cols)} FROM positions p WHERE p.user_id = {p} AND p.status = 'closed' "
            f"ORDER BY p.closed_at DESC, p.id DESC LIMIT {p}"), [part]


def last_closed_positions(user_id: int, config_ids: list[int] | None, n: int) -> list[Position]:
    """The user's last `n` closed positions (of the given pairs; None: of all, removed pairs too), newest
    first: the round trips of /trades."""
    sql, layout = prepared.statement("last_closed_positions", _closed_sql)
    params: list = [int(user_id)]
    if config_ids is not None:  # the pair's own filter (one pair, or the pairs on one exchange)
        if not config_ids:
            return []
        p = db.obj.param
        sql = sql.replace(" ORDER BY", f" AND p.config_id IN ({', '.join([p] * len(config_ids))}) ORDER BY")
        params += [int(i) for i in config_ids]
    return _models(sql, layout, (*params, int(n)))


def position_fees(user_id: int, position_ids: list[int] | None) -> dict[int, Decimal]:
    """Fees of all the fills of each of the user's positions given (None: of every position of the user,
    for /export, whose thousands of ids would not fit in one statement), in quote currency."""
    if position_ids is not None and not position_ids:
        return {}
    p = db.obj.param
    fee = Trade.fee.python_value
    out: dict[int, Decimal] = {}
    sql = f"SELECT t.position_id, t.fee FROM trades t WHERE t.user_id = {p} AND t.position_id "
    if position_ids is None:
        sql, params = sql + "IS NOT NULL", (int(user_id),)
    else:
        sql, params = sql + f"IN ({', '.join([p] * len(position_ids))})", (int(user_id), *map(int, position_ids))
    for pos_id, value in db.obj.execute_sql(sql, params).fetchall():
        out[pos_id] = out.get(pos_id, Decimal(0)) + (fee(value) if value is not None else Decimal(0))
    return out
