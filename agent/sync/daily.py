"""The day's counts for the guardian's charts, kept as events are recorded.

The device cannot read its own sealed journal (segment keys are forgotten), so the daily
summary (PROTOCOL.md §6.3) is built from what it holds in clear for enforcement anyway
(usage intervals, the ledger) and from counts taken here as each event passes on its way
to the journal: blocked apps and domains, tamper signs, requests. `tally(event, tz)` is
pure; `DailyCounts` stores the counts (SQLite, one row per day, kind and key), so the
summary survives a restart; retention purges them like usage.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.core.calendar import local_day
from agent.store.events import Event, EventKind, EventSink, occurrences, record_many
from agent.store.recovery import is_storage_failure
from agent.store.sqlite import SqliteFile

log = logging.getLogger(__name__)
TAMPER = frozenset({EventKind.CLOCK_JUMP, EventKind.TIMEZONE_CHANGE, EventKind.AGENT_START,
                    EventKind.GATE_OUTAGE, EventKind.BAD_SIGNATURE, EventKind.FILTER_LIST_MISSING,
                    EventKind.STORAGE_FAILURE, EventKind.USB_BLOCKED, EventKind.BOOT_TAMPER,
                    EventKind.JOURNAL_DAMAGED})
MAX_KEY = 255
_SCHEMA = """CREATE TABLE IF NOT EXISTS day_counts (
    day TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, kind, key));"""
FLUSH_EVERY = 60.0  # seconds: the most chart counts a crash can lose


@dataclass(frozen=True)
class Count:
    day: date
    kind: str  # blocked_app | blocked_domain | tamper | request
    key: str


def tally(event: Event, tz: ZoneInfo) -> Count | None:
    """What one event adds to the day's counts (None: nothing the charts show)."""
    day = local_day(event.at, tz)
    data = event.data
    if event.kind is EventKind.APP_BLOCKED:
        return Count(day, "blocked_app", str(data.get("app_id") or data.get("path") or "unknown")[:MAX_KEY])
    if event.kind is EventKind.DNS_BLOCKED:
        return Count(day, "blocked_domain", str(data.get("domain") or "unknown")[:MAX_KEY])
    if event.kind in TAMPER:  # keyed by the event kind, as the web app's labels are
        return Count(day, "tamper", event.kind.value)
    if event.kind in (EventKind.TIME_REQUESTED, EventKind.REPORT):
        return Count(day, "request", event.kind.value)
    return None


class DailyCounts(SqliteFile):
    """Counts per (day, kind, key). `add` counts in memory (a flood of blocked lookups
    costs no write each); `flush` writes them in one transaction, and the sync service
    calls it every minute and before it builds a summary, so a crash loses at most the
    last minute of chart counts, never an event (those are in the journal)."""

    def __init__(self, path: Path) -> None:
        # synchronous NORMAL: counts for charts; a lost second is fine (events are in the journal)
        super().__init__(path, _SCHEMA, synchronous="NORMAL")
        self._pending: dict[Count, int] = {}
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def add(self, count: Count, n: int = 1) -> None:
        with self._lock:  # the DNS filter records from its own thread
            self._pending[count] = self._pending.get(count, 0) + n
            due = time.monotonic() - self._flushed >= FLUSH_EVERY
        if due:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
        if pending:
            try:
                with self._transaction() as db:
                    db.executemany("INSERT INTO day_counts (day, kind, key, n) VALUES (?, ?, ?, ?) "
                                   "ON CONFLICT (day, kind, key) DO UPDATE SET n = n + excluded.n",
                                   [(c.day.isoformat(), c.kind, c.key, n) for c, n in pending.items()])
            except sqlite3.Error as exc:
                if not is_storage_failure(exc):
                    raise
                with self._lock:  # a full disk: keep them for the next flush
                    for count, n in pending.items():
                        self._pending[count] = self._pending.get(count, 0) + n
                log.error("daily counts kept in memory: %s", exc)
                return 0
        return len(pending)

    def of_day(self, day: date) -> dict[str, dict[str, int]]:
        self.flush()
        out: dict[str, dict[str, int]] = {}
        for kind, key, n in self._db.execute("SELECT kind, key, n FROM day_counts WHERE day = ?",
                                             (day.isoformat(),)):
            out.setdefault(kind, {})[key] = int(n)
        return out

    def days(self) -> list[date]:
        return [date.fromisoformat(r[0]) for r in self._db.execute(
            "SELECT DISTINCT day FROM day_counts ORDER BY day")]

    def purge_before(self, day: date) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM day_counts WHERE day < ?", (day.isoformat(),)).rowcount

    def delete_all(self) -> int:
        with self._lock:
            self._pending = {}
        with self._transaction() as db:
            return db.execute("DELETE FROM day_counts").rowcount


class TallyingSink:
    """An EventSink in front of the journal: every event is recorded there first, then
    counted; `also` sees each event too (the sync client turns requests into messages)."""

    def __init__(self, inner: EventSink, counts: DailyCounts, timezone: Callable[[], str],
                 also: Callable[[Event], None] | None = None) -> None:
        self.inner, self.counts, self.timezone, self.also = inner, counts, timezone, also

    def record(self, event: Event) -> None:
        self.inner.record(event)
        self._count(event, ZoneInfo(self.timezone()))

    def record_many(self, events: Sequence[Event]) -> None:
        """A batch (the DNS filter's): one hand-over to the journal, then each counted."""
        record_many(self.inner, events)
        tz = ZoneInfo(self.timezone())
        for event in events:
            self._count(event, tz)

    def _count(self, event: Event, tz: ZoneInfo) -> None:
        count = tally(event, tz)
        if count is not None:
            self.counts.add(count, occurrences(event))
        if self.also is not None:
            self.also(event)


def top(counts: Mapping[str, int], limit: int) -> dict[str, int]:
    """The `limit` largest counts (a summary carries at most so many names)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])
