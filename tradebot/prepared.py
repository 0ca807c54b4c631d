"""Statements of the hot paths, built once per database from the models' own column lists.

Building a peewee query costs more CPU than SQLite running it (a /status reply built four queries: about
half of its CPU). The statements here are plain SQL text made once per database connection object (the
parameter style differs between SQLite and PostgreSQL), and their rows become ordinary model instances
with the same field conversions peewee applies, so callers see no difference.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import db

# id(database) -> (database, {name: (sql, layout)})
_cache: dict[int, tuple[object, dict[str, tuple[str, list]]]] = {}


def columns(alias: str, model) -> tuple[list[str], tuple]:
    """The select list of every column of `model` under `alias`, and its part of the row layout."""
    fields = model._meta.sorted_fields
    return ([f'{alias}."{f.column_name}"' for f in fields],
            (model, [(f.name, f.python_value) for f in fields]))


def statement(name: str, build: Callable[[object], tuple[str, list]]) -> tuple[str, list]:
    """(sql, layout) of the named statement for the current database; `build(database)` makes it once."""
    database = db.obj
    hit = _cache.get(id(database))
    if hit is None or hit[0] is not database:
        hit = _cache[id(database)] = (database, {})
    made = hit[1].get(name)
    if made is None:
        made = hit[1][name] = build(database)
    return made


def instance(model, data: dict):
    """A model instance from converted column values (no query, nothing dirty)."""
    obj = model(__no_default__=True)
    obj.__data__ = data
    obj._dirty = set()
    return obj


def models_of(row, layout, start: int = 0) -> tuple[list, int]:
    """The model instances in `row` from `start` (None for a LEFT JOIN that found nothing, known by its
    id, the first column) and the index after them."""
    i = start
    objs = []
    for model, fields in layout:
        n = len(fields)
        values = row[i:i + n]
        i += n
        if values[0] is None:
            objs.append(None)
            continue
        objs.append(instance(model, {name: (conv(v) if v is not None else None)
                                     for (name, conv), v in zip(fields, values, strict=True)}))
    return objs, i
