"""Login back-off and fixed-window rate limits, kept in the database so that every server
process of a deployment counts the same failures.

Back-off: the first `free` failures for a key cost nothing; after that each failure blocks
the key for 1, 2, 4 ... seconds up to 15 minutes, and a request while blocked is answered
429 with Retry-After without checking the password (so it costs the server nothing and
tells the attacker nothing). Keys are per account (a hash of the e-mail) and per address.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, select

from dashboard.db.schema import throttles
from dashboard.db.upsert import insert_ignore
from dashboard.errors import Problem

MAX_BACKOFF = 900


def key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:64]}"


def _row(conn: Connection, name: str) -> tuple[int, int, int] | None:
    row = conn.execute(
        select(throttles.c.failures, throttles.c.window_start, throttles.c.blocked_until).where(
            throttles.c.key == name
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _locked(conn: Connection, name: str) -> tuple[int, int, int]:
    """The key's row, made if missing and locked for this transaction (PostgreSQL)."""
    insert_ignore(conn, throttles, {"key": name, "failures": 0, "window_start": 0, "blocked_until": 0})
    row = conn.execute(
        select(throttles.c.failures, throttles.c.window_start, throttles.c.blocked_until)
        .where(throttles.c.key == name)
        .with_for_update()
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _set(conn: Connection, name: str, failures: int, window_start: int, blocked_until: int) -> None:
    conn.execute(
        throttles.update()
        .where(throttles.c.key == name)
        .values(failures=failures, window_start=window_start, blocked_until=blocked_until)
    )


def check_blocked(conn: Connection, names: list[str], now: int, what: str) -> None:
    wait = max((row[2] - now for n in names if (row := _row(conn, n)) is not None), default=0)
    if wait > 0:
        raise Problem(429, "backoff", f"too many failed {what}; wait {wait} s", retry_after=wait)


def fail(conn: Connection, name: str, now: int, free: int) -> int:
    """Count a failure; returns the seconds the key is now blocked for."""
    failures = _locked(conn, name)[0] + 1
    blocked = 0 if failures <= free else min(2 ** (failures - free - 1), MAX_BACKOFF)
    _set(conn, name, failures, now, now + blocked)
    return blocked


def reset(conn: Connection, name: str) -> None:
    conn.execute(throttles.delete().where(throttles.c.key == name))


def count_in_window(conn: Connection, name: str, now: int, limit: int, window: int, what: str) -> None:
    """Count one event in a fixed window; 429 once `limit` were counted in it."""
    failures, start, _blocked = _locked(conn, name)
    if now - start >= window:
        _set(conn, name, 1, now, 0)
        return
    if failures >= limit:
        wait = start + window - now
        raise Problem(429, "rate-limited", f"too many {what}; wait {wait} s", retry_after=wait)
    _set(conn, name, failures + 1, start, 0)


def used_in_window(conn: Connection, name: str, now: int, window: int) -> int:
    row = _row(conn, name)
    return 0 if row is None or now - row[1] >= window else row[0]


def bump(conn: Connection, name: str, now: int, window: int) -> None:
    """Count one event in the window (see `used_in_window`), without a limit."""
    failures, start, _blocked = _locked(conn, name)
    if now - start >= window:
        _set(conn, name, 1, now, 0)
    else:
        _set(conn, name, failures + 1, start, 0)
