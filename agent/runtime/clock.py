"""The trusted clock of a running agent: one object that owns the watermark.

`agent.core.clock` holds the arithmetic (`advance`, `ntp_resync`, `forward_resync`); this
object holds the state around it: the watermark, the clock source it reads, where tamper
events go, and who must hear of an NTP correction. The daemon builds it first, from the
persisted watermark, and hands `latest` to every part that stamps an event time (the
journal, the DNS filter, the ledger's broker, the exec gate) and the object itself to the
`Agent`, which reads it on every tick. Nothing reads the wall clock on its own, so every
event carries trusted time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from agent.core.clock import (
    NTP_ALLOWANCE,
    ClockEventKind,
    Watermark,
    advance,
    forward_resync,
    ntp_resync,
)
from agent.os.clocksource import ClockSource
from agent.store.events import Event, EventKind, EventSink

log = logging.getLogger("minormode.agent")

# Called with (trusted time before, trusted time after) while the watermark is still the
# one before: the Agent closes open usage at the old time and reopens it at the new one.
ResyncHook = Callable[[datetime, datetime], None]

_CLOCK_EVENT_KIND = {
    ClockEventKind.WALL_JUMP: EventKind.CLOCK_JUMP,
    ClockEventKind.BEHIND_WATERMARK: EventKind.CLOCK_JUMP,
    ClockEventKind.BOOTTIME_BACKWARDS: EventKind.CLOCK_JUMP,
    ClockEventKind.TIMEZONE_CHANGE: EventKind.TIMEZONE_CHANGE,
    ClockEventKind.RESYNC: EventKind.CLOCK_JUMP,
    ClockEventKind.RESYNC_REFUSED: EventKind.CLOCK_JUMP,
}


class TrustedClock:
    """Reads a `ClockSource`, advances the watermark, records what looks like tampering.

    `now()` reads the source (the Agent's tick); `latest()` is the last trusted instant
    without a new reading, for components' timestamps (it reads once if nothing has yet
    in this process, so it never answers with a watermark left by an earlier run).
    """

    def __init__(self, source: ClockSource, mark: Watermark | None = None,
                 events: EventSink | None = None) -> None:
        self.source = source
        self._mark = mark
        self._read = False
        self._events = events
        self._held: list[Event] = []  # found before a sink was given
        self._resync_hooks: list[ResyncHook] = []
        self._ntp_left = NTP_ALLOWANCE  # what NTP may still move trusted time in this process

    @property
    def mark(self) -> Watermark | None:
        """The watermark to persist with the next commit (None before the first reading)."""
        return self._mark

    def record_events_to(self, events: EventSink) -> None:
        """Where tamper events go from now on; events found before are recorded first.
        The daemon opens the journal with `latest` and then points the clock at it."""
        self._events = events
        held, self._held = self._held, []
        for event in held:
            events.record(event)

    def on_resync(self, hook: ResyncHook) -> None:
        self._resync_hooks.append(hook)

    def now(self) -> datetime:
        """The trusted instant (advances the watermark in memory)."""
        reading = self.source.read()
        mark, found = advance(self._mark, reading)
        self._mark, self._read = mark, True
        verified = self.source.synchronized_wall()
        if verified is not None:
            resynced_mark, resynced = ntp_resync(mark, reading, verified, self._ntp_left)
            if resynced_mark is not None and resynced is not None:
                for hook in self._resync_hooks:
                    hook(mark.trusted, resynced_mark.trusted)
                self._mark = resynced_mark
                self._ntp_left -= timedelta(seconds=resynced.delta_seconds)
                log.info("clock: NTP moved trusted time by %+.1f s", resynced.delta_seconds)
            if resynced is not None:
                found.append(resynced)
        for e in found:
            kind = _CLOCK_EVENT_KIND.get(e.kind)
            if kind is not None:
                log.warning("clock: %s (%+.1f s) %s", e.kind.value, e.delta_seconds, e.detail)
                self._record(Event(kind, e.at, {"what": e.kind.value, "delta_seconds": e.delta_seconds,
                                                "detail": e.detail}))
        return self._mark.trusted

    def adopt_signed_time(self, verified: datetime, source: str) -> float:
        """A signed time from `source` (the dashboard): trusted time moves forward to it,
        within `MAX_SERVER_STEP`, and the move is journalled. Returns the seconds moved."""
        reading = self.source.read()
        if self._mark is None:
            self.now()
        assert self._mark is not None
        moved = forward_resync(self._mark, reading, verified)
        if moved is None:
            return 0.0
        before = advance(self._mark, reading)[0].trusted
        new_mark, event = moved
        for hook in self._resync_hooks:
            hook(before, new_mark.trusted)
        self._mark, self._read = new_mark, True
        log.info("clock: %s moved trusted time forward by %+.1f s %s", source, event.delta_seconds,
                 event.detail)
        self._record(Event(EventKind.CLOCK_JUMP, event.at, {"what": "resync", "source": source,
                                                           "delta_seconds": event.delta_seconds,
                                                           "detail": event.detail}))
        return event.delta_seconds

    def latest(self) -> datetime:
        """The last trusted instant, without reading the clock again."""
        if not self._read or self._mark is None:
            return self.now()
        return self._mark.trusted

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of the source's time (a simulated clock runs faster)."""
        await self.source.sleep(seconds)

    def _record(self, event: Event) -> None:
        if self._events is None:
            self._held.append(event)
        else:
            self._events.record(event)
