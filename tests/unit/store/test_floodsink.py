"""The flood sink in front of the daemon's journal: a child's flood of blocked lookups
(random subdomains) or blocked execs writes a bounded number of events, and the counts
the guardian's charts show still add up to every attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.store.events import Event, EventKind, MemoryEventSink
from agent.store.floodsink import MAX_KEYS_PER_FLUSH, FloodSink
from agent.sync.daily import DailyCounts, TallyingSink

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_random_subdomains_of_a_blocked_site_are_one_bucket_and_one_count(tmp_path: Path) -> None:
    journal = MemoryEventSink()
    counts = DailyCounts(tmp_path / "sync.sqlite")
    sink = FloodSink(TallyingSink(journal, counts, lambda: "UTC"), lambda: T, monotonic=lambda: 0.0)
    for i in range(10_000):
        sink.record(Event(EventKind.DNS_BLOCKED, T, {"domain": f"x{i}.casino.example", "reason": "category"}))
    assert len(journal.events) == 60  # the site's burst
    assert sink.flush() == 1
    [agg] = journal.events[60:]
    assert agg.data == {"domain": "casino.example", "reason": "flood", "suppressed": 10_000 - 60}
    counts.flush()
    day = counts.of_day(T.astimezone(ZoneInfo("UTC")).date())
    assert sum(day["blocked_domain"].values()) == 10_000  # every attempt counted, 61 rows written
    counts.close()


def test_many_sites_are_bounded_by_the_kinds_total_and_the_flush_by_its_key_cap() -> None:
    journal = MemoryEventSink()
    sink = FloodSink(journal, lambda: T, monotonic=lambda: 0.0)
    for i in range(5000):
        sink.record(Event(EventKind.DNS_BLOCKED, T, {"domain": f"site{i}.example{i}", "reason": "allowlist"}))
    assert len(journal.events) == 200  # the kind's total burst, whatever the names
    sink.flush()
    aggregated = journal.events[200:]
    assert len(aggregated) == MAX_KEYS_PER_FLUSH + 1  # the largest keys, and "*" for the rest
    assert sum(int(e.data["suppressed"]) for e in aggregated) == 4800  # type: ignore[call-overload]


def test_blocked_execs_are_paced_per_app_and_other_events_pass() -> None:
    journal = MemoryEventSink()
    now = [0.0]
    sink = FloodSink(journal, lambda: T, monotonic=lambda: now[0])
    for _ in range(100):
        sink.record(Event(EventKind.APP_BLOCKED, T, {"app_id": None, "reason": "unknown", "path": "/home/x"}))
        sink.record(Event(EventKind.LOCK, T, {}))
    assert sum(e.kind is EventKind.APP_BLOCKED for e in journal.events) == 20
    assert sum(e.kind is EventKind.LOCK for e in journal.events) == 100
    now[0] = 3600.0  # an hour later the burst is back
    sink.record(Event(EventKind.APP_BLOCKED, T, {"app_id": "org.example.Game", "reason": "blocked"}))
    assert journal.events[-1].data["app_id"] == "org.example.Game"
