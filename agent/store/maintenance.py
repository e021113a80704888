"""Housekeeping the daemon runs for the journal and the ledger, on one asyncio task.

Every `flush_every` seconds: write deferred journal events in one transaction. Every
`flood_every` seconds (and on the way out): the flood gates' refusal counts, as aggregated
events (`agent.store.floodsink`). Every
`retention_every` seconds (and once at start): purge journal segments and answered
purchases older than the policy's `retention_days`. SQLite work runs in a worker thread
(the Journal serialises its own calls), so the event loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.core.policy import Policy
from agent.store.floodsink import FLUSH_EVERY as FLOOD_FLUSH_EVERY
from agent.store.floodsink import FloodSink
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.queueing import QueueingSink
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
        flood: FloodSink | None = None,
        flood_every: float = FLOOD_FLUSH_EVERY,
        queue: QueueingSink | None = None,
    ) -> None:
        """`queue`: the daemon's full-disk queue in front of the journal; its flush writes
        the deferred events and clears the storage failure once a write succeeds."""
        if flush_every <= 0 or retention_every <= 0:
            raise ValueError("maintenance intervals must be positive")
        self._journal = journal
        self._ledger = ledger
        self._policy = policy
        self._clock = clock
        self._flush_every = flush_every
        self._retention_every = retention_every
        self._flood, self._flood_every = flood, flood_every
        self._flush: Callable[[], object] = queue.flush if queue is not None else journal.flush
        self._queue = queue
        self._stopping = asyncio.Event()
        self._queued = asyncio.Event()  # an event was deferred (the disk is failing)

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
        next_flood = loop.time() + self._flood_every
        if self._queue is not None:
            def queued() -> None:  # any thread
                loop.call_soon_threadsafe(self._queued.set)

            self._queue.on_queued = queued
        try:
            while not self._stopping.is_set():
                self._queued.clear()
                try:
                    if self._flood is not None and loop.time() >= next_flood:
                        next_flood = loop.time() + self._flood_every
                        await asyncio.to_thread(self._flood.flush)  # refusals as counts
                    if loop.time() >= next_retention:
                        next_retention = loop.time() + self._retention_every
                        await self.retention()
                    if self._journal.pending:
                        await asyncio.to_thread(self._flush)
                except sqlite3.Error as exc:  # a full disk must not end the agent; retry
                    log.error("journal maintenance failed: %s", exc)
                # Sleep until the next flood or retention run; a second while events wait
                # for a failing disk. Idle, this loop wakes a few times an hour, not 1/s.
                if self._journal.pending:  # retried each second, however many come in
                    await self._sleep(self._flush_every, woken_by_queued=False)
                else:
                    due = next_retention if self._flood is None else min(next_retention, next_flood)
                    await self._sleep(max(0.0, due - loop.time()), woken_by_queued=True)
        finally:
            if self._flood is not None:
                await asyncio.to_thread(self._flood.flush)
            if self._journal.pending:
                await asyncio.to_thread(self._flush)

    async def _sleep(self, seconds: float, *, woken_by_queued: bool) -> None:
        """Until `seconds` pass, `stop()`, or (`woken_by_queued`) an event is deferred."""
        waits = {asyncio.ensure_future(self._stopping.wait())}
        if woken_by_queued:
            waits.add(asyncio.ensure_future(self._queued.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def stop(self) -> None:
        self._stopping.set()
