"""The one way the stores write: a BEGIN IMMEDIATE transaction that rolls back on any error;
and the one way they store an instant (integer UTC microseconds).

IMMEDIATE takes the write lock up front, so two writers serialise instead of failing at
COMMIT; this is what keeps concurrent purchases from exceeding a cap together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    """An aware instant as integer microseconds since the Unix epoch (UTC): how the journal
    and the ledger store time (exact, and ordered as integers)."""
    if at.tzinfo is None:
        raise ValueError(f"instant {at!r} is not timezone-aware")
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)
