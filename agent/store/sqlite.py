"""The one way the stores write: a BEGIN IMMEDIATE transaction that rolls back on any error.

IMMEDIATE takes the write lock up front, so two writers serialise instead of failing at
COMMIT; this is what keeps concurrent purchases from exceeding a cap together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
