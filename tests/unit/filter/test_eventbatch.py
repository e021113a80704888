"""The DNS events' batcher: per-name counts, the rate limit, the bounds and what a flood
drops, one journal transaction per batch, and a DNS loop that never waits for the sink."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.filter import dnswire as dw
from agent.filter.eventbatch import BlockedTally, EventBatcher
from agent.filter.names import wire_name
from agent.filter.server import DnsFilter
from agent.store.events import Event, EventKind, MemoryEventSink
from agent.store.layout import StoreLayout
from agent.sync.daily import DailyCounts, TallyingSink

pytestmark = pytest.mark.timeout(60)
AT = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tally(*names: str, capacity: int = 64, reason: str = "adult") -> BlockedTally:
    t = BlockedTally(capacity)
    for name in names:
        t.add(wire_name(name), reason)
    return t


def blocked(sink: MemoryEventSink) -> list[tuple[str, int]]:
    return [(str(e.data["domain"]), int(str(e.data["count"]))) for e in sink.events
            if e.kind is EventKind.DNS_BLOCKED]


def test_one_name_in_many_tallies_is_one_event_with_its_count() -> None:
    sink, clock = MemoryEventSink(), Monotonic()
    b = EventBatcher(sink, lambda: AT, monotonic=clock)
    b.hand(tally("a.test", "a.test", "b.test"))
    b.hand(tally("a.test"))
    assert b.flush() == 2
    assert sorted(blocked(sink)) == [("a.test", 3), ("b.test", 1)]
    assert sink.batches == 1 and {e.at for e in sink.events} == {AT}
    assert {e.data["reason"] for e in sink.events} == {"adult"}


def test_a_names_later_lookups_are_held_and_written_once_its_minute_is_over() -> None:
    sink, clock = MemoryEventSink(), Monotonic()
    b = EventBatcher(sink, lambda: AT, rate_limit=60, monotonic=clock)
    b.hand(tally("a.test"))
    b.flush()
    clock.now += 10
    b.hand(tally("a.test", "a.test"))
    assert b.flush() == 0  # within its minute: held
    clock.now += 30
    b.hand(tally("a.test"))
    assert b.flush() == 0
    clock.now += 21  # 61 s after the first event
    assert b.flush() == 1
    assert blocked(sink) == [("a.test", 1), ("a.test", 3)]
    assert b.counters.events == 2 and b.counters.events_dropped == 0


def test_stop_writes_what_is_held_and_queued() -> None:
    sink, clock = MemoryEventSink(), Monotonic()
    b = EventBatcher(sink, lambda: AT, interval=3600, monotonic=clock)
    b.start()
    b.hand(tally("a.test"))
    b.flush()
    b.hand(tally("a.test", "b.test"))
    b.stop()
    assert sorted(blocked(sink)) == [("a.test", 1), ("a.test", 1), ("b.test", 1)]


def test_a_full_tally_counts_lookups_as_dropped_and_says_so_once_a_minute() -> None:
    sink, clock = MemoryEventSink(), Monotonic()
    b = EventBatcher(sink, lambda: AT, rate_limit=60, monotonic=clock)
    t = tally("a.test", "b.test", "c.test", "d.test", "a.test", capacity=2)
    assert t.full and t.dropped == 2  # c and d: no room; a again: counted
    t.drop(5)  # what the fast path reports when it skipped the names of a full tally
    b.hand(t)
    b.flush()
    assert sorted(blocked(sink)) == [("a.test", 2), ("b.test", 1)]
    drops = [e.data for e in sink.events if e.kind is EventKind.DNS_EVENTS_DROPPED]
    assert drops == [{"lookups": 7}] and b.counters.events_dropped == 7
    clock.now += 5
    b.hand(tally("x.test", "y.test", "z.test", capacity=1))
    b.flush()
    assert len([e for e in sink.events if e.kind is EventKind.DNS_EVENTS_DROPPED]) == 1
    clock.now += 60
    b.flush()
    drops = [e.data for e in sink.events if e.kind is EventKind.DNS_EVENTS_DROPPED]
    assert drops == [{"lookups": 7}, {"lookups": 2}] and b.counters.events_dropped == 9


def test_more_names_than_a_batch_takes_are_dropped_and_counted() -> None:
    sink, clock = MemoryEventSink(), Monotonic()
    b = EventBatcher(sink, lambda: AT, max_events=3, monotonic=clock)
    b.hand(tally(*(f"n{i}.test" for i in range(5))))
    assert b.flush() == 3
    assert b.counters.events_dropped == 2


def test_a_full_queue_refuses_without_waiting() -> None:
    sink, clock = MemoryEventSink(), Monotonic()
    b = EventBatcher(sink, lambda: AT, max_queue=2, monotonic=clock)
    assert b.hand(tally("a.test")) and b.hand(tally("b.test"))
    assert not b.hand(tally("c.test", "c.test"))
    b.flush()
    assert sorted(blocked(sink)) == [("a.test", 1), ("b.test", 1)]
    assert [e.data for e in sink.events if e.kind is EventKind.DNS_EVENTS_DROPPED] == [{"lookups": 2}]


class FailingOnce(MemoryEventSink):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def record_many(self, events: Sequence[Event]) -> None:  # type: ignore[override]
        if self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        super().record_many(events)


def test_a_batch_the_sink_refuses_is_counted_as_dropped_and_reported() -> None:
    sink, clock = FailingOnce(), Monotonic()
    b = EventBatcher(sink, lambda: AT, monotonic=clock)
    b.hand(tally("a.test", "a.test"))
    assert b.flush() == 0 and sink.events == []
    assert b.counters.events_dropped == 2 and b.counters.events == 0
    b.flush()
    assert [e.data for e in sink.events] == [{"lookups": 2}]


def test_a_batch_is_one_journal_transaction_and_the_charts_count_lookups(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "state")
    journal = layout.open_journal(clock=lambda: AT)
    counts = DailyCounts(tmp_path / "sync.sqlite")
    sink = TallyingSink(journal, counts, lambda: "UTC")  # the daemon's sink (agent/daemon.py)
    b = EventBatcher(sink, lambda: AT, monotonic=Monotonic())
    try:
        before = commits(journal.path)
        t = BlockedTally(1000)
        for i in range(200):
            for _ in range(1 + i % 3):
                t.add(wire_name(f"site{i}.test"), "adult")
        b.hand(t)
        assert b.flush() == 200
        assert commits(journal.path) == before + 1, "one batch, one signed commit"
        assert journal.head_seq == 200
        day = counts.of_day(AT.date())["blocked_domain"]
        assert day["site0.test"] == 1 and day["site2.test"] == 3
        assert sum(day.values()) == sum(1 + i % 3 for i in range(200))
    finally:
        counts.close()
        journal.close()


def commits(path: Path) -> int:
    """Signed checkpoints in the journal file: one per committed append."""
    with closing(sqlite3.connect(path)) as db:
        n: int = db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    return n


class StuckSink(MemoryEventSink):
    """A journal that hangs (a stalled SD card): record_many waits for `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def record_many(self, events: Sequence[Event]) -> None:  # type: ignore[override]
        self.entered.set()
        assert self.release.wait(30)
        super().record_many(events)


def test_lookups_are_answered_while_the_journal_hangs(make_filter: Callable[..., DnsFilter]) -> None:
    sink = StuckSink()
    flt = make_filter(events=sink, event_batch=0.05)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(dw.build_query("first.porn.example"), flt.bound[0])
            s.recv(512)
            assert sink.entered.wait(10), "the batcher never wrote"
            t0 = time.monotonic()
            for i in range(300):  # distinct blocked names: each one a new event
                s.sendto(dw.build_query(f"n{i}.porn.example", ident=i), flt.bound[0])
                reply = s.recv(512)
                assert reply[:2] == i.to_bytes(2, "big") and reply[3] & 0xF == dw.NXDOMAIN
            assert time.monotonic() - t0 < 10  # a bound against hanging, not a timing goal
    finally:
        sink.release.set()
    flt.stop()
    itemised = sum(int(str(e.data["count"])) for e in sink.events if e.kind is EventKind.DNS_BLOCKED)
    dropped = sum(int(str(e.data["lookups"])) for e in sink.events
                  if e.kind is EventKind.DNS_EVENTS_DROPPED)
    assert itemised + dropped == 301 == flt.stats.blocked  # every lookup accounted for
    assert flt.stats.events_dropped == dropped
