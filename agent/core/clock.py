"""The trusted clock: wall time the child cannot move to gain time.

The shell reads three facts from the OS (wall time, CLOCK_BOOTTIME, the boot ID) and the
device's configured timezone; `advance` turns them and the persisted `Watermark` into the
trusted instant. Within one boot the trusted time runs on CLOCK_BOOTTIME alone (it counts
suspend), so setting the wall clock back or forward changes nothing and is recorded as a
tamper event. Across a reboot the time spent powered off is unknowable: the wall clock is
adopted unless it is behind the watermark plus the new boot's CLOCK_BOOTTIME (a sound lower
bound of the time passed), so the trusted timeline never runs backwards. What remains is
the powered-off time itself: a clock set back across a reboot can delay the next window
edge by at most the time the device was off, and needs root to set the clock at all.
Corrections from a source the child cannot control (systemd-timesyncd's synchronised flag,
a signed time from the dashboard) go through `resync`. The device's timezone never matters:
day boundaries use the policy's timezone, so a timezone change is only recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

JUMP_TOLERANCE = timedelta(seconds=2)


@dataclass(frozen=True)
class ClockReading:
    wall: datetime  # aware, from the OS wall clock
    boottime_ns: int  # CLOCK_BOOTTIME
    boot_id: str  # /proc/sys/kernel/random/boot_id
    zone: str  # the device's configured timezone name (recorded, never used for days)


@dataclass(frozen=True)
class Watermark:
    """Persisted after every advance: the trusted instant at a boot-time reading."""

    boot_id: str
    boottime_ns: int
    trusted: datetime
    wall_offset: timedelta  # wall - trusted at the last reading, to spot new jumps
    zone: str


class ClockEventKind(StrEnum):
    WALL_JUMP = "wall_jump"  # the wall clock moved against boot time during a boot
    BEHIND_WATERMARK = "behind_watermark"  # after a reboot the wall clock was in the past
    TIMEZONE_CHANGE = "timezone_change"
    RESYNC = "resync"  # trusted time corrected from a verified source
    REBOOT = "reboot"
    BOOTTIME_BACKWARDS = "boottime_backwards"  # should never happen; the state was edited


@dataclass(frozen=True)
class ClockEvent:
    kind: ClockEventKind
    at: datetime  # trusted instant
    delta_seconds: float = 0.0
    detail: str = ""


def advance(mark: Watermark | None, reading: ClockReading) -> tuple[Watermark, list[ClockEvent]]:
    """The trusted instant for `reading` (as the new watermark) and what looked like tampering."""
    if mark is None:
        return _mark(reading, reading.wall), []
    events: list[ClockEvent] = []
    if reading.boot_id == mark.boot_id:
        elapsed_ns = reading.boottime_ns - mark.boottime_ns
        if elapsed_ns < 0:
            events.append(ClockEvent(ClockEventKind.BOOTTIME_BACKWARDS, mark.trusted, elapsed_ns / 1e9))
            elapsed_ns = 0
        trusted = mark.trusted + timedelta(microseconds=elapsed_ns // 1000)
        offset = reading.wall - trusted
        jump = offset - mark.wall_offset
        if abs(jump) > JUMP_TOLERANCE:
            events.append(ClockEvent(ClockEventKind.WALL_JUMP, trusted, jump.total_seconds()))
    else:
        # At least this boot's CLOCK_BOOTTIME has passed since the watermark was written.
        floor = mark.trusted + timedelta(microseconds=reading.boottime_ns // 1000)
        trusted = max(reading.wall, floor)
        events.append(ClockEvent(ClockEventKind.REBOOT, trusted, detail=reading.boot_id))
        if reading.wall < floor - JUMP_TOLERANCE:
            behind = (reading.wall - floor).total_seconds()
            events.append(ClockEvent(ClockEventKind.BEHIND_WATERMARK, trusted, behind))
    if reading.zone != mark.zone:
        events.append(
            ClockEvent(ClockEventKind.TIMEZONE_CHANGE, trusted, detail=f"{mark.zone} -> {reading.zone}")
        )
    return _mark(reading, trusted), events


def resync(mark: Watermark, reading: ClockReading, verified: datetime) -> tuple[Watermark, ClockEvent]:
    """Adopt a verified wall time (NTP synchronised by root, or signed by the dashboard)."""
    current, _ = advance(mark, reading)
    delta = (verified - current.trusted).total_seconds()
    new = replace(_mark(reading, verified), zone=reading.zone)
    return new, ClockEvent(ClockEventKind.RESYNC, verified, delta)


def _mark(reading: ClockReading, trusted: datetime) -> Watermark:
    return Watermark(reading.boot_id, reading.boottime_ns, trusted, reading.wall - trusted, reading.zone)
