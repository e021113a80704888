"""The guardian's daily summary is built from clear data the device holds, and agrees with
what the child's device counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.scenario import policy

from agent.core.decide import decide
from agent.core.usage import Interval, Usage
from agent.store.events import Event, EventKind, MemoryEventSink
from agent.sync.backoff import Backoff
from agent.sync.daily import Count, DailyCounts, TallyingSink, tally
from agent.sync.summary import build, hourly

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 24, hour, minute, tzinfo=TZ).astimezone(UTC)


def test_tally_counts_what_the_charts_show_by_the_guardians_local_day() -> None:
    late = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)  # 00:30 on the 25th in Shanghai
    assert tally(Event(EventKind.DNS_BLOCKED, late, {"domain": "bad.example"}), TZ) == \
        Count(date(2026, 11, 25), "blocked_domain", "bad.example")
    assert tally(Event(EventKind.APP_BLOCKED, _at(9), {"app_id": "org.game"}), TZ) == \
        Count(DAY, "blocked_app", "org.game")
    assert tally(Event(EventKind.BAD_SIGNATURE, _at(9), {}), TZ) == Count(DAY, "tamper", "bad_signature")
    assert tally(Event(EventKind.AGENT_START, _at(9), {}), TZ) == Count(DAY, "tamper", "agent_start")
    assert tally(Event(EventKind.POLICY_LOADED, _at(9), {}), TZ) is None


def test_counts_survive_a_restart_once_flushed_and_a_flood_is_one_write(tmp_path: Path) -> None:
    counts = DailyCounts(tmp_path / "sync.sqlite")
    inner = MemoryEventSink()
    seen: list[Event] = []
    sink = TallyingSink(inner, counts, lambda: "Asia/Shanghai", also=seen.append)
    for _ in range(10_000):
        sink.record(Event(EventKind.DNS_BLOCKED, _at(10), {"domain": "flood.example"}))
    assert len(inner.events) == 10_000 and len(seen) == 10_000  # every event reaches the journal
    assert counts.flush() == 1
    counts.close()
    again = DailyCounts(tmp_path / "sync.sqlite")
    assert again.of_day(DAY) == {"blocked_domain": {"flood.example": 10_000}}
    assert again.purge_before(DAY + timedelta(days=1)) == 1 and again.of_day(DAY) == {}


def test_summary_used_seconds_match_the_devices_own_count() -> None:
    pol = policy(budget={"daily_minutes": 60}, apps={"default": "allow", "always_allowed": ["org.call"]})
    usage = Usage(active=(Interval(_at(9), _at(9, 40)),),
                  apps={"org.paint": (Interval(_at(9), _at(9, 30)),), "org.call": (Interval(_at(9, 30), _at(9, 40)),)})
    d = decide(pol, _at(9, 40), usage)
    s = build(DAY, pol, usage, {"blocked_app": {"org.game": 3}, "request": {"time_requested": 2}}, [])
    assert s.used_seconds == d.used_seconds == 30 * 60  # the call app's 10 minutes never count
    assert s.per_app == {"org.paint": 1800, "org.call": 600}
    assert s.budget_seconds == 3600 and s.blocked_apps == {"org.game": 3} and s.requests == 2
    assert s.hourly[9] == 40 * 60 and sum(s.hourly) == 40 * 60


def test_hourly_on_a_dst_day_keeps_24_buckets() -> None:
    ny = "America/New_York"
    tz = ZoneInfo(ny)
    start = datetime(2026, 11, 1, 0, 0, tzinfo=tz).astimezone(UTC)
    end = datetime(2026, 11, 2, 0, 0, tzinfo=tz).astimezone(UTC)  # 25 hours
    buckets = hourly([Interval(start, end)], start, end, ny)
    assert len(buckets) == 24 and buckets[1] == 3600 and sum(buckets) == 24 * 3600


@pytest.mark.parametrize("failures, draw, low, high", [(0, 0.5, 0, 0), (1, 0.0, 0.5, 0.5), (3, 0.99, 3.9, 4.0),
                                                       (30, 0.99, 290, 300)])
def test_backoff_grows_to_its_cap_with_jitter(failures: int, draw: float, low: float, high: float) -> None:
    assert low <= Backoff().delay(failures, draw) <= high
    with pytest.raises(ValueError):
        Backoff().delay(1, 1.0)
