"""INSERT ... ON CONFLICT DO NOTHING on either database: make a row exist without racing
another process that makes it at the same moment (on PostgreSQL a missing row cannot be
locked with SELECT ... FOR UPDATE, so "select, then insert" can collide)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any] | list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = values if isinstance(values, list) else [values]
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
