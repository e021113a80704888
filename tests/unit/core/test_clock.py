"""The trusted clock: wall-clock jumps, reboots and timezone changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.core.clock import ClockEventKind, ClockReading, advance, resync

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
S = 10**9


def r(wall: datetime, boot_s: float, boot: str = "a", zone: str = "Asia/Shanghai") -> ClockReading:
    return ClockReading(wall, int(boot_s * S), boot, zone)


def test_first_reading_adopts_the_wall_clock() -> None:
    mark, events = advance(None, r(T0, 5))
    assert mark.trusted == T0 and events == []


def test_trusted_time_follows_boot_time_not_the_wall() -> None:
    mark, _ = advance(None, r(T0, 5))
    mark, events = advance(mark, r(T0 + timedelta(days=1), 65))  # wall +1 day, boot +60 s
    assert mark.trusted == T0 + timedelta(seconds=60)
    assert [e.kind for e in events] == [ClockEventKind.WALL_JUMP]
    assert events[0].delta_seconds == 86_400 - 60
    # The jump is reported once, not on every later reading.
    mark, events = advance(mark, r(T0 + timedelta(days=1, seconds=30), 95))
    assert mark.trusted == T0 + timedelta(seconds=90) and events == []


def test_small_drift_is_not_a_jump() -> None:
    mark, _ = advance(None, r(T0, 5))
    _, events = advance(mark, r(T0 + timedelta(seconds=61), 65))
    assert events == []


def test_reboot_never_runs_backwards() -> None:
    mark, _ = advance(None, r(T0, 5))
    mark, events = advance(mark, r(T0 - timedelta(hours=5), 20, boot="b"))
    assert mark.trusted == T0 + timedelta(seconds=20)  # watermark + this boot's boot time
    assert {e.kind for e in events} == {ClockEventKind.REBOOT, ClockEventKind.BEHIND_WATERMARK}


def test_reboot_adopts_a_later_wall_clock() -> None:
    mark, _ = advance(None, r(T0, 5))
    mark, events = advance(mark, r(T0 + timedelta(hours=8), 20, boot="b"))
    assert mark.trusted == T0 + timedelta(hours=8)
    assert [e.kind for e in events] == [ClockEventKind.REBOOT]


def test_timezone_change_is_recorded_only() -> None:
    mark, _ = advance(None, r(T0, 5))
    mark, events = advance(mark, r(T0 + timedelta(seconds=10), 15, zone="UTC"))
    assert mark.trusted == T0 + timedelta(seconds=10)
    assert [e.kind for e in events] == [ClockEventKind.TIMEZONE_CHANGE]


def test_boottime_backwards_is_flagged_and_ignored() -> None:
    mark, _ = advance(None, r(T0, 50))
    mark, events = advance(mark, r(T0, 10))
    assert mark.trusted == T0
    assert events[0].kind is ClockEventKind.BOOTTIME_BACKWARDS


def test_resync_from_a_verified_source() -> None:
    mark, _ = advance(None, r(T0, 5))
    verified = T0 + timedelta(hours=2)
    mark, event = resync(mark, r(T0 + timedelta(seconds=10), 15), verified)
    assert mark.trusted == verified and event.kind is ClockEventKind.RESYNC
    mark, _ = advance(mark, r(T0 + timedelta(seconds=20), 25))
    assert mark.trusted == verified + timedelta(seconds=10)
