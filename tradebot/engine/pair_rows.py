"""One read of everything a pair's cycle needs: its config, its owner's status, the credential of its
exchange, its state, its open position and the number of its pending order intents, in ONE statement.

The cycle runs for every pair every interval (20,000 pairs = 333 cycles a second): building six peewee
queries per cycle cost more CPU than SQLite running them. The statement is built once per database from
the models' own column lists, and the rows become ordinary model instances (no query on attribute access
except foreign-key objects, which the cycle never touches).
"""

from __future__ import annotations

from dataclasses import dataclass

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
_cache: dict[int, tuple[object, str, list]] = {}


def _statement(database) -> tuple[str, list]:
    hit = _cache.get(id(database))
    if hit is not None and hit[0] is database:
        return hit[1], hit[2]
    cols, layout = [], []
    for alias, model in _PARTS:
        fields = model._meta.sorted_fields
        layout.append((model, [(f.name, f.python_value) for f in fields]))
        cols.extend(f'{alias}."{f.column_name}"' for f in fields)
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
    _cache[id(database)] = (database, sql, layout)
    return sql, layout


def _instance(model, data: dict):
    obj = model(__no_default__=True)
    obj.__data__ = data
    obj._dirty = set()
    return obj


def load_pair(config_id: int) -> PairRows | None:
    database = db.obj
    sql, layout = _statement(database)
    row = database.execute_sql(sql, (config_id,)).fetchone()
    if row is None:
        return None
    i = 0
    objs = []
    for model, fields in layout:
        n = len(fields)
        values = row[i:i + n]
        i += n
        if values[0] is None:  # the LEFT JOIN found nothing (id is the first column)
            objs.append(None)
            continue
        objs.append(_instance(model, {name: (conv(v) if v is not None else None)
                                      for (name, conv), v in zip(fields, values, strict=True)}))
    cfg, cred, state, pos = objs
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
