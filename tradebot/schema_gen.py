"""Builds schema.sql: the PostgreSQL DDL peewee issues for the models, then the portable views."""

from __future__ import annotations

from .db import schema_sql_text, tables_ddl_postgres

HEADER = """-- tradebot schema. Generated tables part: `tradebot db schema > schema.sql` keeps it in
-- sync with tradebot/models.py (a test checks). Tables are created by peewee migrations
-- (on SQLite money columns use the MONEYTEXT type, i.e. TEXT affinity, so Decimals stay exact);
-- the views below are executed verbatim on both SQLite and PostgreSQL.
"""


def views_part(text: str | None = None) -> str:
    text = schema_sql_text() if text is None else text
    return "-- @views" + text.split("-- @views", 1)[1]


def render(views: str | None = None) -> str:
    return HEADER + "\n" + tables_ddl_postgres() + "\n\n" + (views or views_part())
