"""The spending ledger: every purchase request, its answer, and the totals caps are judged on.

SQLite (WAL, synchronous=FULL). Each request runs in one BEGIN IMMEDIATE transaction that
reads the totals, judges (`agent.core.spending.judge`) and writes the answer, so two
requests (threads or processes) can never both pass a cap that only one of them fits
under. Pending purchases count against the caps until the guardian denies them or they
expire, so approving them later can never exceed a cap either.

The same (app, idempotency key) always gets the same purchase back; a reused key with
different details is refused. Days and months are counted in the policy's timezone
from the purchase's UTC instant; `now` is always passed in.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.core.policy import SpendingCaps
from agent.core.spending import SpendingError, judge, period_bounds, validate_request
from agent.store.filewatch import WriteWatch
from agent.store.recovery import check_sqlite
from agent.store.sqlite import from_micros, immediate, micros

_SCHEMA = """
CREATE TABLE IF NOT EXISTS purchases (
    request_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    item TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,     -- UTC microseconds
    expires_at INTEGER,              -- pending only
    decided_at INTEGER,
    announced INTEGER NOT NULL DEFAULT 1,   -- 0: a later decision not yet signalled
    UNIQUE (app_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS purchases_created ON purchases (created_at);
"""
COUNTED = ("approved", "pending")


class PurchaseStatus(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    PENDING = "pending"
    REFUNDED = "refunded"
    EXPIRED = "expired"


class LedgerError(ValueError):
    """A request the ledger refuses (unknown id, wrong app, key reuse); nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Purchase:
    request_id: str
    app_id: str
    idempotency_key: str
    amount: int
    currency: str
    item: str
    status: PurchaseStatus
    reason: str
    created_at: datetime
    expires_at: datetime | None
    decided_at: datetime | None


_COLUMNS = (
    "request_id, app_id, idempotency_key, amount, currency, item, status, reason, "
    "created_at, expires_at, decided_at"
)


def _at(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


def _row(r: Any) -> Purchase:
    return Purchase(
        request_id=r[0],
        app_id=r[1],
        idempotency_key=r[2],
        amount=r[3],
        currency=r[4],
        item=r[5],
        status=PurchaseStatus(r[6]),
        reason=r[7],
        created_at=from_micros(r[8]),
        expires_at=_at(r[9]),
        decided_at=_at(r[10]),
    )


def _check_text(what: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise SpendingError(f"bad_{what}", f"{what} must be 1-{limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SpendingError(f"bad_{what}", f"{what} must not contain control characters")
    return value


class Ledger:
    def __init__(self, path: Path, *, pending_ttl: timedelta = timedelta(hours=24)) -> None:
        if pending_ttl <= timedelta(0):
            raise ValueError("pending_ttl must be positive")
        self.path = path
        self._ttl = pending_ttl
        self._lock = threading.Lock()
        check_sqlite(path)  # a damaged ledger is set aside (agent.store.recovery), not fatal
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        os.chmod(path, 0o600)  # purchases are the child's data; -wal/-shm inherit the mode
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def watch_writes(self, on_write: Callable[[], None]) -> WriteWatch:
        """A watch (not started) that calls `on_write` on the event loop whenever this
        ledger's file is written by anyone: root's CLI decides purchases by writing it, so
        the broker hears of them at once instead of polling."""
        return WriteWatch(self.path, on_write)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._db) as db:
            yield db

    def _get(self, db: sqlite3.Connection, request_id: str) -> Purchase | None:
        r = db.execute(
            f"SELECT {_COLUMNS} FROM purchases WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if r is None else _row(r)

    def _expire(self, db: sqlite3.Connection, now: int) -> None:
        db.execute(
            "UPDATE purchases SET status = 'expired', reason = 'guardian_did_not_answer', "
            "decided_at = expires_at, announced = 0 "
            "WHERE status = 'pending' AND expires_at <= ?",
            (now,),
        )

    def _spent(self, db: sqlite3.Connection, currency: str, start: datetime, end: datetime) -> int:
        (total,) = db.execute(
            "SELECT coalesce(sum(amount), 0) FROM purchases WHERE currency = ? "
            f"AND status IN {COUNTED!r} AND created_at >= ? AND created_at < ?",
            (currency, micros(start), micros(end)),
        ).fetchone()
        return int(total)

    def totals(self, caps: SpendingCaps, tz: tzinfo, now: datetime) -> tuple[int, int]:
        """(spent today, spent this month) in the policy's timezone, pending included."""
        p = period_bounds(now, tz)
        with self._transaction() as db:
            self._expire(db, micros(now))
            return (
                self._spent(db, caps.currency, p.day_start, p.day_end),
                self._spent(db, caps.currency, p.month_start, p.month_end),
            )

    def authorize(
        self,
        *,
        caps: SpendingCaps,
        tz: tzinfo,
        app_id: str,
        amount: int,
        currency: str,
        item: str,
        idempotency_key: str,
        now: datetime,
    ) -> Purchase:
        """Judge and record one request, or return the earlier answer for the same key."""
        validate_request(caps, amount, currency)
        _check_text("item", item, 200)
        _check_text("idempotency_key", idempotency_key, 128)
        _check_text("app_id", app_id, 255)
        at = micros(now)
        p = period_bounds(now, tz)
        with self._transaction() as db:
            self._expire(db, at)
            r = db.execute(
                f"SELECT {_COLUMNS} FROM purchases WHERE app_id = ? AND idempotency_key = ?",
                (app_id, idempotency_key),
            ).fetchone()
            if r is not None:
                earlier = _row(r)
                if (earlier.amount, earlier.currency, earlier.item) != (amount, currency, item):
                    raise LedgerError(
                        "idempotency_conflict",
                        f"idempotency key {idempotency_key!r} was used for a different purchase",
                    )
                return earlier
            decision = judge(
                caps,
                amount,
                currency,
                self._spent(db, currency, p.day_start, p.day_end),
                self._spent(db, currency, p.month_start, p.month_end),
            )
            status = PurchaseStatus(decision.verdict.value)
            expires = (
                at + self._ttl // timedelta(microseconds=1)
                if status is PurchaseStatus.PENDING
                else None
            )
            request_id = uuid.uuid4().hex
            db.execute(
                f"INSERT INTO purchases ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    request_id, app_id, idempotency_key, amount, currency, item,
                    status.value, decision.reason.value, at, expires,
                    None if status is PurchaseStatus.PENDING else at,
                ),
            )
            got = self._get(db, request_id)
        assert got is not None
        return got

    def refund(self, *, app_id: str, request_id: str, now: datetime) -> Purchase:
        """Give an approved purchase's amount back to the caps (same app only)."""
        with self._transaction() as db:
            got = self._get(db, request_id)
            if got is None or got.app_id != app_id:
                raise LedgerError("unknown_request", f"no purchase {request_id!r} by this app")
            if got.status is PurchaseStatus.REFUNDED:
                return got
            if got.status is not PurchaseStatus.APPROVED:
                raise LedgerError(
                    "not_refundable", f"purchase {request_id} is {got.status}, not approved"
                )
            db.execute(
                "UPDATE purchases SET status = 'refunded', reason = 'refunded', decided_at = ? "
                "WHERE request_id = ?",
                (micros(now), request_id),
            )
            done = self._get(db, request_id)
        assert done is not None
        return done

    def decide(self, request_id: str, approve: bool, now: datetime) -> Purchase:
        """The guardian's answer to a pending purchase; to be signalled by the broker."""
        with self._transaction() as db:
            self._expire(db, micros(now))
            got = self._get(db, request_id)
            if got is None:
                raise LedgerError("unknown_request", f"no purchase {request_id!r}")
            if got.status is not PurchaseStatus.PENDING:
                raise LedgerError("not_pending", f"purchase {request_id} is {got.status}")
            status, reason = ("approved", "guardian_approved") if approve else (
                "denied", "guardian_denied")
            db.execute(
                "UPDATE purchases SET status = ?, reason = ?, decided_at = ?, announced = 0 "
                "WHERE request_id = ?",
                (status, reason, micros(now), request_id),
            )
            done = self._get(db, request_id)
        assert done is not None
        return done

    def expire(self, now: datetime) -> None:
        with self._transaction() as db:
            self._expire(db, micros(now))

    def next_expiry(self) -> datetime | None:
        """When the first pending request expires (None: nothing pending): the broker
        schedules its expiry run for then instead of looking every second."""
        with self._transaction() as db:
            (at,) = db.execute(
                "SELECT min(expires_at) FROM purchases WHERE status = 'pending'"
            ).fetchone()
        return _at(at)

    def get(self, request_id: str) -> Purchase | None:
        with self._transaction() as db:
            return self._get(db, request_id)

    def purchases(self, status: PurchaseStatus | None = None) -> list[Purchase]:
        query = f"SELECT {_COLUMNS} FROM purchases"
        args: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status.value,)
        with self._transaction() as db:
            return [_row(r) for r in db.execute(query + " ORDER BY created_at", args)]

    def take_unannounced(self) -> list[Purchase]:
        """Decisions made after the request (guardian, expiry) not yet signalled; marks them."""
        with self._transaction() as db:
            rows = [
                _row(r)
                for r in db.execute(
                    f"SELECT {_COLUMNS} FROM purchases WHERE announced = 0 ORDER BY decided_at"
                )
            ]
            db.execute("UPDATE purchases SET announced = 1 WHERE announced = 0")
        return rows

    def apply_retention(self, retention_days: int, tz: tzinfo, now: datetime) -> int:
        """Forget answered purchases older than the policy's retention, but never any from
        the current local month (the monthly cap is counted from them). Returns how many."""
        if retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, not {retention_days}")
        cutoff = min(now - timedelta(days=retention_days), period_bounds(now, tz).month_start)
        with self._transaction() as db:
            self._expire(db, micros(now))
            n = db.execute(
                "DELETE FROM purchases WHERE created_at < ? AND status != 'pending' "
                "AND announced = 1",
                (micros(cutoff),),
            ).rowcount
        return int(n)

    def count(self) -> int:
        with self._transaction() as db:
            return int(db.execute("SELECT count(*) FROM purchases").fetchone()[0])

    def delete_all(self) -> int:
        """Data rights: forget every purchase. Returns how many were deleted."""
        with self._transaction() as db:
            n = db.execute("DELETE FROM purchases").rowcount
        return int(n)
