"""One read of everything a pair's cycle needs: its config, its owner's status, the credential of its
exchange, its state, its open position and the number of its pending order intents, in ONE statement.

The cycle runs for every pair every interval (20,000 pairs = 333 cycles a second): building six peewee
queries per cycle cost more CPU than SQLite running them. The statement is built once per database from
the models' own column lists, and the rows become ordinary model instances (no query on attribute access
except foreign-key objects, which the cycle never touches).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import prepared
from ..models import ExchangeCredential, Position, UserConfig, UserState, db


@dataclass(slots=True)
class PairRows:
    cfg: UserConfig
    user_status: str
    cred: ExchangeCredential | None
    state: UserState | None
    position: Position | None
    pending: int  # order intents of this pair still 'pending'


_PARTS = (("c", UserConfig), ("x", ExchangeCredential), ("s", UserState), ("p", Position))


def _build(database) -> tuple[str, list]:
    cols, layout = [], []
    for alias, model in _PARTS:
        c, part = prepared.columns(alias, model)
        cols.extend(c)
        layout.append(part)
    sql = (
        f"SELECT {', '.join(cols)}, u.status, "
        "(SELECT COUNT(*) FROM orders o WHERE o.config_id = c.id AND o.status = 'pending') "
        "FROM user_configs c JOIN users u ON u.id = c.user_id "
        "LEFT JOIN exchange_credentials x ON x.user_id = c.user_id AND x.exchange = c.exchange "
        "LEFT JOIN user_states s ON s.config_id = c.id "
        "LEFT JOIN positions p ON p.id = (SELECT MAX(q.id) FROM positions q "
        "WHERE q.config_id = c.id AND q.status = 'open') "
        f"WHERE c.id = {database.param}"
    )
    return sql, layout


def load_pair(config_id: int) -> PairRows | None:
    sql, layout = prepared.statement("pair_rows", _build)
    row = db.obj.execute_sql(sql, (config_id,)).fetchone()
    if row is None:
        return None
    (cfg, cred, state, pos), i = prepared.models_of(row, layout)
    return PairRows(cfg, row[i], cred, state, pos, int(row[i + 1] or 0))


def update_state(state_id: int, changed: dict) -> None:
    """UPDATE user_states SET <changed> WHERE id = ?: the cycle's one write, without building a peewee
    query (that cost more CPU than the statement itself). Values go through the fields' db_value."""
    database = db.obj
    p = database.param
    fields = UserState._meta.fields
    cols, params = [], []
    for name, value in changed.items():
        f = fields[name]
        cols.append(f'"{f.column_name}" = {p}')
        params.append(f.db_value(value))
    params.append(state_id)
    database.execute_sql(f"UPDATE user_states SET {', '.join(cols)} WHERE id = {p}", params)
