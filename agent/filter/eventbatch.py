"""DNS_BLOCKED events off the DNS thread: a bounded tally per thread and a batcher.

Why: a journal event is a sealed, signed SQLite transaction with an fsync. Made on the
DNS loop's own thread, one per blocked name, it held the in-agent filter to ~3k blocked
qps against ~200k standalone. So the loop only counts: `BlockedTally.add` is a dict update
(at most `capacity` names; past that a lookup is only counted as dropped), and every tick
the loop hands its tally to the `EventBatcher`'s bounded queue (`hand` never blocks: a full
queue drops the tally and counts its lookups). The batcher's own thread writes everything
handed in one `record_many` (one journal transaction) per `interval`; with nothing handed,
held or to report it sleeps (an idle agent's filter never wakes).

Per name, at most one event per `rate_limit` seconds: the first lookup of a name is
written with the next batch, later ones are held and written, as one event with their
`count`, once the name's minute is over (a flood of one name is one event a minute). More
than `max_events` names in one batch, or tallies the queue could not take, are dropped:
counted in `counters.events_dropped` (the filter's `Stats`) and written as one
DNS_EVENTS_DROPPED event `{lookups}` per `rate_limit`. A lookup is never delayed or
refused for any of this.

What a kill -9 or a power cut loses: the lookups counted but not yet written (at most
one tick plus one `interval`, plus held counts of names blocked within the last minute).
None of them was acknowledged to anyone: the child got its answer, and nothing claimed
the event was journalled. Once `record_many` returns, the batch is the journal's (durable).
`stop()` writes what is queued, held counts included, in one last batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agent.filter import dnswire as dw
from agent.store.events import Event, EventKind, EventSink, record_many

log = logging.getLogger(__name__)


class BlockedTally:
    """One thread's blocked lookups between hand-offs: count per name, bounded (not
    thread-safe: the DNS loop owns one, each TCP answer makes its own)."""

    __slots__ = ("capacity", "counts", "dropped", "reasons")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[bytes, int] = {}
        self.reasons: dict[bytes, str] = {}
        self.dropped = 0

    def add(self, wire: bytes, reason: str) -> None:
        """Count one blocked lookup of `wire` (lowercase wire name)."""
        counts = self.counts
        n = counts.get(wire)
        if n is not None:
            counts[wire] = n + 1
        elif len(counts) < self.capacity:
            counts[wire] = 1
            self.reasons[wire] = reason
        else:
            self.dropped += 1

    @property
    def full(self) -> bool:
        """No room for another name (the caller may count lookups with `drop` instead)."""
        return len(self.counts) >= self.capacity

    def drop(self, lookups: int) -> None:
        self.dropped += lookups

    def __bool__(self) -> bool:
        return bool(self.counts) or self.dropped > 0

    def lookups(self) -> int:
        return sum(self.counts.values()) + self.dropped


class EventCounters(Protocol):
    """Where the batcher counts (the filter's `Stats`)."""

    events: int  # DNS_BLOCKED events handed to the sink
    events_dropped: int  # blocked lookups never itemised (full tally or queue, failed write)


@dataclass
class _Counters:
    events: int = 0
    events_dropped: int = 0


class EventBatcher:
    """Writes handed-in tallies as DNS_BLOCKED events, one `record_many` per `interval`,
    from its own thread (`start`/`stop`), or when `flush` is called (tests)."""

    def __init__(
        self,
        sink: EventSink,
        clock: Callable[[], datetime],
        *,
        interval: float = 1.0,
        rate_limit: float = 60.0,
        max_queue: int = 64,
        max_events: int = 256,
        max_names: int = 16384,
        monotonic: Callable[[], float] = time.monotonic,
        counters: EventCounters | None = None,
    ) -> None:
        """`clock` stamps the events (the daemon's trusted time); `monotonic` times the
        per-name rate limit; `max_names` bounds the names remembered for it."""
        self.sink, self.clock, self.interval, self.rate_limit = sink, clock, interval, rate_limit
        self.max_queue, self.max_events, self.max_names = max_queue, max_events, max_names
        self.monotonic = monotonic
        self._queue: deque[BlockedTally] = deque()
        self._lock = threading.Lock()  # the queue's bound: any thread may `hand`
        self._last: dict[bytes, float] = {}  # name -> when its last event was written
        self._held: dict[bytes, tuple[str, int]] = {}  # name -> lookups since (reason, n)
        self._dropped_pending = 0  # dropped lookups not yet reported in an event
        self._dropped_reported: float | None = None
        self.counters: EventCounters = counters if counters is not None else _Counters()
        self.batches = 0
        self._work = threading.Event()  # set by `hand` when the queue was empty, and `stop`
        self._stop = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._flushing = threading.Lock()

    # ----- any thread --------------------------------------------------------------
    def hand(self, tally: BlockedTally) -> bool:
        """Queue a tally for the next batch; never blocks. A full queue drops it (its
        lookups counted as dropped) and returns False."""
        with self._lock:
            if len(self._queue) < self.max_queue:
                self._queue.append(tally)
                if len(self._queue) == 1:
                    self._work.set()
                return True
            self.counters.events_dropped += tally.lookups()
            self._dropped_pending += tally.lookups()
            return False

    # ----- the batcher's thread ----------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dns-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then write everything queued and held in one last batch."""
        self._stopping = True
        self._stop.set()
        self._work.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush(final=True)

    def _run(self) -> None:
        """Sleep until there is work (a tally handed, held counts or a drop report due),
        then gather for `interval` and write one batch: idle, the thread never wakes."""
        while not self._stopping:
            self._work.wait(self._idle_wait())
            self._work.clear()
            if self._stop.wait(self.interval):  # a batch per interval under any load
                return
            self.flush()

    def _idle_wait(self) -> float | None:
        """Seconds until the first held count or drop report falls due (None: nothing
        will, until a tally is handed). Names whose minute is over but hold nothing need
        no wake-up: `_due` reads their time, and the next batch forgets them."""
        now = self.monotonic()
        due: float | None = None
        held = self._held
        if held:
            for wire, t in self._last.items():  # in write order: the first held is due first
                if wire in held:
                    due = t + self.rate_limit
                    break
        with self._lock:
            dropped = self._dropped_pending
        if dropped:
            reported = self._dropped_reported
            at = now if reported is None else reported + self.rate_limit
            due = at if due is None else min(due, at)
        return None if due is None else max(0.0, due - now)

    def flush(self, final: bool = False) -> int:
        """Write one batch now (`final`: held counts too); returns the events written."""
        with self._flushing:
            return self._flush(final)

    def _flush(self, final: bool) -> int:
        with self._lock:
            tallies, self._queue = list(self._queue), deque()
        now = self.monotonic()
        counts, reasons, dropped = _merge(tallies)
        due, over = self._due(counts, reasons, now, final)
        self._count_dropped(dropped + over)
        if not due and not self._dropped_pending:
            return 0
        at = self.clock()  # one stamp for the batch: the trusted time it is written
        events = [Event(EventKind.DNS_BLOCKED, at, {"domain": dw.decode_name(wire),
                                                    "reason": reason, "count": n})
                  for wire, reason, n in due]
        with self._lock:
            pending = self._dropped_pending
        reported = self._dropped_reported
        report = pending > 0 and (final or reported is None or now - reported >= self.rate_limit)
        if report:
            events.append(Event(EventKind.DNS_EVENTS_DROPPED, at, {"lookups": pending}))
        if not events:
            return 0
        try:
            record_many(self.sink, events)
        except (sqlite3.Error, OSError, RuntimeError) as exc:  # RuntimeError: JournalError
            # Nothing of this batch was acknowledged: its lookups count as dropped (and the
            # drop report, not written either, stays pending).
            self._count_dropped(sum(n for _, _, n in due))
            log.error("DNS events: a batch of %d could not be written: %s", len(events), exc)
            return 0
        if report:
            with self._lock:
                self._dropped_pending -= pending
            self._dropped_reported = now
        self.batches += 1
        self.counters.events += len(due)
        return len(due)

    def _due(self, counts: dict[bytes, int], reasons: dict[bytes, str], now: float,
             final: bool) -> tuple[list[tuple[bytes, str, int]], int]:
        """The (name, reason, lookups) events to write now under the per-name rate limit,
        and the lookups over `max_events` (dropped); the rest is held for later."""
        due: list[tuple[bytes, str, int]] = []
        last, held, limit = self._last, self._held, self.rate_limit
        over = 0
        for wire, n in counts.items():
            seen = last.get(wire)
            if seen is not None and now - seen < limit:
                reason, before = held.get(wire, (reasons[wire], 0))
                held[wire] = (reason, before + n)
            elif wire not in held and len(due) >= self.max_events:
                over += n
            else:
                reason, before = held.pop(wire, (reasons[wire], 0))
                due.append((wire, reason, before + n))
                last.pop(wire, None)  # `last` stays in the order of the events written
                last[wire] = now
        self._expire(due, now, final)
        return due, over

    def _expire(self, due: list[tuple[bytes, str, int]], now: float, final: bool) -> None:
        """Names whose minute is over (the oldest first: `last` is in write order) leave
        the rate limit's memory, their held lookups written; past `max_names` the oldest
        leave early (their held lookups written early: more events, never fewer)."""
        last, held, limit = self._last, self._held, self.rate_limit
        excess = len(last) - self.max_names
        gone: list[tuple[bytes, bool]] = []  # (name, its minute is over)
        for wire, t in last.items():
            over = now - t >= limit
            if not (final or over or excess > 0):
                break
            gone.append((wire, over))
            excess -= 1
        for wire, over in gone:
            del last[wire]
            reason_n = held.pop(wire, None)
            if reason_n is not None:
                due.append((wire, *reason_n))
                if over and not final:  # its next minute starts with this event
                    last[wire] = now

    def _count_dropped(self, lookups: int) -> None:
        with self._lock:  # `hand` counts too, from other threads
            self.counters.events_dropped += lookups
            self._dropped_pending += lookups


def _merge(tallies: list[BlockedTally]) -> tuple[dict[bytes, int], dict[bytes, str], int]:
    """One count per name over several tallies (a name in many is one name), the reasons,
    and the lookups the tallies dropped."""
    counts: dict[bytes, int] = {}
    reasons: dict[bytes, str] = {}
    dropped = 0
    for tally in tallies:
        dropped += tally.dropped
        for wire, n in tally.counts.items():
            before = counts.get(wire)
            if before is None:
                counts[wire] = n
                reasons[wire] = tally.reasons[wire]
            else:
                counts[wire] = before + n
    return counts, reasons, dropped
