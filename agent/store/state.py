"""The agent's durable state in SQLite (WAL, synchronous=FULL): usage intervals, grants,
the trusted-clock watermark, the last good policy, and (until the encrypted journal takes
over) plain events.

Every write is one transaction; once a method returns, what it wrote survives kill -9 and
power loss. Instants are stored as integer microseconds since the Unix epoch (UTC), exact
and cheap to compare. The schema is versioned with `PRAGMA user_version` and migrated
forward step by step, so a device updated from any older version reads its old state.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agent.core.activity import SESSION, Closed
from agent.core.clock import Watermark
from agent.core.grants import Grant, GrantKind, GrantSource, TimeRequest
from agent.core.guardian_code import CodeState
from agent.core.policy import DefaultKey
from agent.core.usage import Interval, Usage
from agent.store.events import Event, EventKind
from agent.store.identity import write_private
from agent.store.recovery import check_sqlite, set_aside
from agent.store.sqlite import immediate

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE intervals (
        id INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL,          -- '' for the session's own active time
        start_us INTEGER NOT NULL,
        end_us INTEGER NOT NULL CHECK (end_us >= start_us),
        categories TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX intervals_end ON intervals (end_us);
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        issued_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL,
        source TEXT NOT NULL,
        minutes INTEGER NOT NULL DEFAULT 0,
        day TEXT,
        waives TEXT
    );
    CREATE TABLE watermark (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        boot_id TEXT NOT NULL,
        boottime_ns INTEGER NOT NULL,
        trusted_us INTEGER NOT NULL,
        wall_offset_us INTEGER NOT NULL,
        zone TEXT NOT NULL
    );
    CREATE TABLE policy (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        version INTEGER NOT NULL,
        source TEXT NOT NULL,
        body TEXT NOT NULL,            -- the effective policy as JSON
        loaded_us INTEGER NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    """,
    # 2: small durable values (guardian-code back-off, pending requests) that must outlive
    # a reboot, or rebooting would reset a rate limit.
    """
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL            -- JSON
    );
    """,
]


# kv rows (migration 2): keep these keys, or a device updated in place loses its back-off.
CODE_STATE_KEY = "guardian_code_state"
PENDING_KEY = "pending_time_requests"


def to_us(instant: datetime) -> int:
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


log = logging.getLogger(__name__)


class StateStore:
    """One SQLite file; use from one thread (the daemon's loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        check_sqlite(path)  # a damaged store is set aside (agent.store.recovery), not fatal
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"{self.path}: schema version {current} is newer than this agent knows "
                f"({len(MIGRATIONS)}); refusing to touch it"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction():
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with immediate(self.conn) as conn:
            yield conn

    # ------------------------------------------------------------------ usage and clock

    def commit_tick(self, closed: Iterable[Closed], mark: Watermark | None = None) -> None:
        """Closed intervals and the clock watermark in one transaction."""
        rows = [
            (c.app_id, to_us(c.interval.start), to_us(c.interval.end), ",".join(sorted(c.categories)))
            for c in closed
        ]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO intervals (app_id, start_us, end_us, categories) VALUES (?, ?, ?, ?)", rows
            )
            if mark is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO watermark VALUES (1, ?, ?, ?, ?, ?)",
                    (mark.boot_id, mark.boottime_ns, to_us(mark.trusted),
                     int(mark.wall_offset.total_seconds() * 1_000_000), mark.zone),
                )

    def usage_since(self, start: datetime) -> Usage:
        """Every interval that ends after `start` (callers clip to the day they need)."""
        active: list[Interval] = []
        apps: dict[str, list[Interval]] = {}
        cats: dict[str, frozenset[str]] = {}
        for app_id, s, e, categories in self.conn.execute(
            "SELECT app_id, start_us, end_us, categories FROM intervals WHERE end_us > ? ORDER BY start_us",
            (to_us(start),),
        ):
            iv = Interval(from_us(s), from_us(e))
            if app_id == SESSION:
                active.append(iv)
            else:
                apps.setdefault(app_id, []).append(iv)
                cats[app_id] = frozenset(c for c in categories.split(",") if c)
        return Usage(tuple(active), {k: tuple(v) for k, v in apps.items()}, cats)

    def interval_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM intervals").fetchone()[0])

    def purge_usage_before(self, instant: datetime) -> int:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM intervals WHERE end_us < ?", (to_us(instant),)).rowcount

    def load_watermark(self) -> Watermark | None:
        row = self.conn.execute(
            "SELECT boot_id, boottime_ns, trusted_us, wall_offset_us, zone FROM watermark"
        ).fetchone()
        if row is None:
            return None
        return Watermark(row[0], row[1], from_us(row[2]), timedelta(microseconds=row[3]), row[4])

    # ------------------------------------------------------------------ grants

    def add_grant(self, grant: Grant) -> None:
        """Store a grant (its id must be new)."""
        if not self.add_grant_once(grant):
            raise sqlite3.IntegrityError(f"grant {grant.id} exists")

    def add_grant_once(self, grant: Grant) -> bool:
        """Store a grant unless one with its id is stored already (a guardian's message
        delivered twice); returns whether it was new."""
        with self.transaction() as conn:
            return conn.execute(
                "INSERT OR IGNORE INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (grant.id, grant.kind.value, to_us(grant.issued_at), to_us(grant.expires_at),
                 grant.source.value, grant.minutes, grant.day.isoformat() if grant.day else None,
                 grant.waives.value if grant.waives else None),
            ).rowcount == 1

    def grants(self, now: datetime) -> list[Grant]:
        """Grants not yet expired at `now` (future ones included)."""
        return [
            Grant(
                id=r[0], kind=GrantKind(r[1]), issued_at=from_us(r[2]), expires_at=from_us(r[3]),
                source=GrantSource(r[4]), minutes=r[5],
                day=date.fromisoformat(r[6]) if r[6] else None,
                waives=DefaultKey(r[7]) if r[7] else None,
            )
            for r in self.conn.execute(
                "SELECT id, kind, issued_us, expires_us, source, minutes, day, waives "
                "FROM grants WHERE expires_us > ? ORDER BY issued_us", (to_us(now),)
            )
        ]

    def end_grants(self, kinds: frozenset[GrantKind], at: datetime) -> int:
        """Grants of these kinds in force at `at` end there; one issued at `at` or later
        (so it could not end after starting) is removed."""
        if not kinds:
            return 0
        marks = ",".join("?" * len(kinds))
        names, t = sorted(k.value for k in kinds), to_us(at)
        with self.transaction() as conn:
            gone = conn.execute(f"DELETE FROM grants WHERE kind IN ({marks}) AND issued_us >= ? "
                                "AND expires_us > ?", (*names, t, t)).rowcount
            return gone + conn.execute(
                f"UPDATE grants SET expires_us = ? WHERE kind IN ({marks}) AND issued_us < ? "
                "AND expires_us > ?", (t, *names, t, t)).rowcount

    def delete_child_data(self) -> int:
        """Delete the child's usage, grants, plain events and pending requests (a guardian's
        deletion or unpairing); the watermark and the policy stay."""
        with self.transaction() as conn:
            removed = sum(conn.execute(f"DELETE FROM {table}").rowcount
                          for table in ("intervals", "grants", "events"))
            removed += conn.execute("DELETE FROM kv WHERE key = ?", (PENDING_KEY,)).rowcount
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def purge_grants_before(self, instant: datetime) -> int:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM grants WHERE expires_us < ?", (to_us(instant),)).rowcount

    # ------------------------------------------------------------------ policy

    @property
    def policy_copy(self) -> Path:
        """A copy of the last good policy beside the store, so a damaged store (set aside at
        start) still starts with it rather than the band defaults."""
        return self.path.with_name(self.path.name + ".last-good-policy.json")

    def save_policy(self, version: int, source: str, body: dict[str, object], at: datetime) -> None:
        text = json.dumps(body, sort_keys=True)
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO policy VALUES (1, ?, ?, ?, ?)",
                         (version, source, text, to_us(at)))
        try:
            write_private(self.policy_copy, json.dumps(
                {"version": version, "source": source, "body": body}, sort_keys=True).encode())
        except OSError as exc:  # the store has it; the copy is only for a damaged store
            log.error("could not keep a copy of the last good policy: %s", exc)

    def forget_policy(self) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM policy")
        self.policy_copy.unlink(missing_ok=True)

    def last_policy(self) -> tuple[int, str, dict[str, object]] | None:
        """The last good policy: from the store, or its copy when the store has none (a
        damaged store was set aside); a copy that does not read is set aside too."""
        row = self.conn.execute("SELECT version, source, body FROM policy").fetchone()
        if row is not None:
            return row[0], row[1], json.loads(row[2])
        try:
            saved = json.loads(self.policy_copy.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            set_aside(self.policy_copy, f"unreadable: {exc}")
            return None
        if not (isinstance(saved, dict) and isinstance(saved.get("version"), int)
                and isinstance(saved.get("body"), dict)):
            set_aside(self.policy_copy, "not a saved policy")
            return None
        return saved["version"], f"{saved.get('source', '?')} (kept copy)", saved["body"]

    # ------------------------------------------------------------------ the D-Bus controller's values
    # Rows of the kv table (JSON), read and written only through these typed methods.

    def guardian_code_state(self) -> CodeState:
        """The guardian code's used step and back-off; a missing or garbled row is the
        fresh state (as before the first code)."""
        value = self._get_value(CODE_STATE_KEY)
        if not isinstance(value, dict):
            return CodeState()
        wait = value.get("wait_until")
        return CodeState(value.get("last_used"), int(value.get("failures", 0)),
                         datetime.fromisoformat(wait) if wait else None)

    def save_guardian_code_state(self, state: CodeState) -> None:
        self._put_value(CODE_STATE_KEY, {
            "last_used": state.last_used, "failures": state.failures,
            "wait_until": state.wait_until.isoformat() if state.wait_until else None})

    def pending_requests(self) -> list[TimeRequest]:
        """The child's requests for more time that the guardian has not answered yet."""
        value = self._get_value(PENDING_KEY)
        rows = value if isinstance(value, list) else []
        return [TimeRequest(r["id"], r["minutes"], r["note"]) for r in rows]

    def save_pending_requests(self, requests: Iterable[TimeRequest]) -> None:
        self._put_value(PENDING_KEY, [{"id": r.id, "minutes": r.minutes, "note": r.note} for r in requests])

    def _get_value(self, key: str) -> object:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _put_value(self, key: str, value: object) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    # ------------------------------------------------------------------ events (EventSink)

    def record(self, event: Event) -> None:
        self.record_many([event])

    def record_many(self, events: Iterable[Event]) -> None:
        rows = [(e.kind.value, to_us(e.at), json.dumps(dict(e.data), sort_keys=True)) for e in events]
        with self.transaction() as conn:
            conn.executemany("INSERT INTO events (kind, at_us, data) VALUES (?, ?, ?)", rows)

    def events(self, kind: EventKind | None = None) -> list[Event]:
        query = "SELECT kind, at_us, data FROM events"
        args: tuple[str, ...] = ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind.value,)
        return [
            Event(EventKind(k), from_us(at), json.loads(data))
            for k, at, data in self.conn.execute(query + " ORDER BY id", args)
        ]
