"""The one way the stores write: a BEGIN IMMEDIATE transaction that rolls back on any error;
and the one way they store an instant (integer UTC microseconds).

IMMEDIATE takes the write lock up front, so two writers serialise instead of failing at
COMMIT; this is what keeps concurrent purchases from exceeding a cap together.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.store.recovery import check_sqlite


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteFile:
    """A root-only SQLite file in WAL mode, written in IMMEDIATE transactions: the small
    stores beside the state store (the trust store, the sync store, the day's counts)."""

    def __init__(self, path: Path, schema: str, *, synchronous: str = "FULL",
                 secure_delete: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        check_sqlite(path)  # a damaged store is set aside (agent.store.recovery), not fatal
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        os.chmod(path, 0o600)  # SQLite gives the -wal and -shm files the same mode
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        if secure_delete:
            self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(schema)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with immediate(self._db) as db:
            yield db


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
