"""TrustedClock: the one owner of the watermark. Tamper events found before the journal
exists are kept for it; `latest()` never re-reads; an NTP correction closes usage first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.core.clock import Watermark
from agent.dev.clock import ManualClock
from agent.runtime.clock import TrustedClock
from agent.store.events import EventKind, MemoryEventSink

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_events_before_a_sink_are_recorded_when_it_is_given() -> None:
    source = ManualClock(T0)
    clock = TrustedClock(source)
    assert clock.now() == T0
    source.set_wall(T0 + timedelta(hours=3))  # the child moves the wall clock
    assert clock.now() == T0  # trusted time does not move
    sink = MemoryEventSink()
    clock.record_events_to(sink)
    assert [(e.kind, e.data["what"]) for e in sink.events] == [(EventKind.CLOCK_JUMP, "wall_jump")]
    source.zone = "America/New_York"
    clock.now()
    assert [e.kind for e in sink.events] == [EventKind.CLOCK_JUMP, EventKind.TIMEZONE_CHANGE]


def test_latest_reads_once_then_only_returns_the_last_instant() -> None:
    source = ManualClock(T0)
    stale = Watermark("boot-1", 0, T0 - timedelta(days=1), timedelta(days=1), "UTC")  # a day old
    clock = TrustedClock(source, stale)
    assert clock.latest() == T0 - timedelta(days=1) + timedelta(seconds=1)  # read: 1 s of boot time
    source.advance(30)
    assert clock.latest() == T0 - timedelta(days=1) + timedelta(seconds=1)  # no new reading
    assert clock.now() == T0 - timedelta(days=1) + timedelta(seconds=31)
    assert clock.mark is not None and clock.mark.boottime_ns == source.boottime_ns


def test_resync_hooks_see_the_old_and_new_time_while_the_mark_is_the_old_one() -> None:
    source = ManualClock(T0)
    clock = TrustedClock(source, events=MemoryEventSink())
    clock.now()
    seen: list[tuple[datetime, datetime, datetime | None]] = []
    clock.on_resync(lambda before, after: seen.append(
        (before, after, clock.mark.trusted if clock.mark else None)))
    source.advance(10)
    source.ntp_wall = T0 + timedelta(minutes=5)
    assert clock.now() == T0 + timedelta(minutes=5)
    assert seen == [(T0 + timedelta(seconds=10), T0 + timedelta(minutes=5), T0 + timedelta(seconds=10))]
    assert clock.latest() == T0 + timedelta(minutes=5)
