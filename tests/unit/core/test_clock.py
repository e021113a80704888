"""The trusted clock: wall-clock jumps, reboots and timezone changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.core.clock import ClockEventKind, ClockReading, advance, ntp_resync

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


def test_ntp_moves_trusted_time_forward_within_the_allowance() -> None:
    mark, _ = advance(None, r(T0, 5))
    verified = T0 + timedelta(minutes=10)
    new, event = ntp_resync(mark, r(T0 + timedelta(seconds=10), 15), verified, timedelta(minutes=15))
    assert new is not None and new.trusted == verified
    assert event is not None and event.kind is ClockEventKind.RESYNC
    later, _ = advance(new, r(T0 + timedelta(seconds=20), 25))
    assert later.trusted == verified + timedelta(seconds=10)


@pytest.mark.parametrize(("step", "why"), [
    (timedelta(minutes=16), "allowance"),  # beyond 15 minutes: a forged NTP answer
    (timedelta(days=3), "allowance"),  # skipping to a later day's fresh budget
    (timedelta(minutes=-10), "backwards"),  # backing out of a curfew that has begun
])
def test_ntp_beyond_its_bounds_is_refused_and_recorded(step: timedelta, why: str) -> None:
    mark, _ = advance(None, r(T0, 5))
    reading = r(T0 + timedelta(seconds=10), 15)
    new, event = ntp_resync(mark, reading, T0 + timedelta(seconds=10) + step, timedelta(minutes=15))
    assert new is None
    assert event is not None and event.kind is ClockEventKind.RESYNC_REFUSED and why in event.detail
    assert event.delta_seconds == step.total_seconds()


def test_ntp_agreeing_within_the_tolerance_is_silent() -> None:
    mark, _ = advance(None, r(T0, 5))
    assert ntp_resync(mark, r(T0, 5), T0 + timedelta(seconds=1), timedelta(minutes=15)) == (None, None)


def test_a_signed_server_time_moves_the_clock_forward_only_and_within_bounds() -> None:
    """The dashboard's signed time (forward_resync): ahead is adopted (capped at 400 days,
    so a lying server cannot throw the clock years ahead); behind changes nothing, so it
    can never give the child time back."""
    from datetime import UTC, datetime, timedelta

    from agent.core.clock import MAX_SERVER_STEP, ClockReading, advance, forward_resync

    t = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    reading = ClockReading(t, 10**9, "b", "UTC")
    mark, _ = advance(None, reading)
    ahead = forward_resync(mark, reading, t + timedelta(hours=3))
    assert ahead is not None and ahead[0].trusted == t + timedelta(hours=3) and ahead[1].delta_seconds == 3 * 3600
    assert forward_resync(mark, reading, t - timedelta(hours=3)) is None
    assert forward_resync(mark, reading, t + timedelta(seconds=1)) is None  # within the tolerance
    far = forward_resync(mark, reading, t + timedelta(days=5000))
    assert far is not None and far[0].trusted == t + MAX_SERVER_STEP and "capped" in far[1].detail
