"""The journal as the daemon's event sink when the disk is full: queue, never fail.

An event the journal cannot write now (SQLite says the disk is full, or an I/O error) is
deferred in memory (`Journal.defer`); while the journal is failing every new event is
deferred too, so the queue keeps its order, and `StoreMaintenance` flushes it once a
write succeeds again. The outage itself is queued as a `storage_failure` tamper event, one
per store and outage (`StorageHealth.on_failure`). The queue is bounded (`MAX_QUEUED`):
the flood gates in front already bound what the child can add; beyond it events are
counted, not kept, and the count is logged and recorded when the disk recovers.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime

from agent.store.events import Event, EventKind
from agent.store.journal import Journal
from agent.store.recovery import StorageHealth, is_storage_failure

log = logging.getLogger(__name__)

MAX_QUEUED = 100_000
JOURNAL = "journal"


class QueueingSink:
    def __init__(self, journal: Journal, health: StorageHealth, clock: Callable[[], datetime],
                 max_queued: int = MAX_QUEUED) -> None:
        self.journal, self.health, self.clock, self.max_queued = journal, health, clock, max_queued
        self.dropped = 0
        self.on_queued: Callable[[], None] | None = None  # from any thread: maintenance's wake
        health.on_failure.append(self._outage)

    def record(self, event: Event) -> None:
        if JOURNAL in self.health.failing:
            self._queue(event)
            return
        try:
            self.journal.record(event)
        except (sqlite3.Error, OSError) as exc:
            if not is_storage_failure(exc):
                raise
            self._queue(event)
            self.health.failed(JOURNAL, exc)

    def flush(self) -> None:
        """Write what is queued (StoreMaintenance, every second while any is); clears the failure."""
        try:
            if self.journal.pending:
                self.journal.flush()
        except (sqlite3.Error, OSError) as exc:
            if not is_storage_failure(exc):
                raise
            self.health.failed(JOURNAL, exc)
            return
        if JOURNAL in self.health.failing:
            self.health.recovered(JOURNAL)
            if self.dropped:
                log.error("the full disk cost %d events beyond the queue", self.dropped)
                self.journal.record(Event(EventKind.STORAGE_FAILURE, self.clock(),
                                          {"store": JOURNAL, "dropped": self.dropped}))
                self.dropped = 0

    def _queue(self, event: Event) -> None:
        if self.journal.pending >= self.max_queued:
            self.dropped += 1
            return
        self.journal.defer(event)
        if self.on_queued is not None:
            self.on_queued()

    def _outage(self, store: str, exc: BaseException) -> None:
        self._queue(Event(EventKind.STORAGE_FAILURE, self.clock(), {"store": store, "error": str(exc)[:200]}))
