"""Housekeeping the daemon runs for the journal and the ledger, on one asyncio task.

Every `flush_every` seconds: write deferred journal events in one transaction. Every
`retention_every` seconds (and once at start): purge journal segments and answered
purchases older than the policy's `retention_days`. SQLite work runs in a worker thread
(the Journal serialises its own calls), so the event loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.core.policy import Policy
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.retention import PurgeResult

log = logging.getLogger(__name__)


class StoreMaintenance:
    def __init__(
        self,
        journal: Journal,
        ledger: Ledger | None,
        policy: Callable[[], Policy],
        clock: Callable[[], datetime],
        *,
        flush_every: float = 1.0,
        retention_every: float = 3600.0,
    ) -> None:
        if flush_every <= 0 or retention_every <= 0:
            raise ValueError("maintenance intervals must be positive")
        self._journal = journal
        self._ledger = ledger
        self._policy = policy
        self._clock = clock
        self._flush_every = flush_every
        self._retention_every = retention_every
        self._stopping = asyncio.Event()

    async def retention(self) -> tuple[PurgeResult, int]:
        """Apply the policy's retention now; returns (journal purge, purchases forgotten)."""
        policy = self._policy()
        purged = await asyncio.to_thread(self._journal.apply_retention, policy.retention_days)
        forgotten = 0
        if self._ledger is not None:
            forgotten = await asyncio.to_thread(
                self._ledger.apply_retention,
                policy.retention_days,
                ZoneInfo(policy.timezone),
                self._clock(),
            )
        return purged, forgotten

    async def run(self) -> None:
        """Until `stop()`; flushes what is pending on the way out."""
        loop = asyncio.get_running_loop()
        next_retention = loop.time()
        try:
            while not self._stopping.is_set():
                try:
                    if loop.time() >= next_retention:
                        next_retention = loop.time() + self._retention_every
                        await self.retention()
                    if self._journal.pending:
                        await asyncio.to_thread(self._journal.flush)
                except sqlite3.Error as exc:  # a full disk must not end the agent; retry
                    log.error("journal maintenance failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._flush_every)
        finally:
            if self._journal.pending:
                await asyncio.to_thread(self._journal.flush)

    def stop(self) -> None:
        self._stopping.set()
