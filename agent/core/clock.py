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
Corrections come from two sources. NTP (systemd-timesyncd's synchronised flag) is not
authenticated: whoever runs the network the child joins can answer it, so `ntp_resync`
moves trusted time only forward and only within an allowance (`NTP_ALLOWANCE` per boot of
the agent), and refuses a larger or backward jump (recorded). The dashboard's signed time
is authenticated: `forward_resync` adopts it forward by up to `MAX_SERVER_STEP`. The
device's timezone never matters: day boundaries use the policy's timezone, so a timezone
change is only recorded.
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
    RESYNC_REFUSED = "resync_refused"  # an unauthenticated correction beyond its bounds
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


NTP_ALLOWANCE = timedelta(minutes=15)  # the most NTP may move trusted time, all syncs together


def ntp_resync(mark: Watermark, reading: ClockReading, verified: datetime,
               allowance: timedelta) -> tuple[Watermark | None, ClockEvent | None]:
    """Adopt an NTP time only forward and only within `allowance` (what is left of
    `NTP_ALLOWANCE`): a forged NTP answer can then neither skip to tomorrow's budget nor
    back out of a curfew. Returns (the new watermark or None, the event to record or None
    when the time agrees within the tolerance). A refused correction keeps the watermark
    and is recorded as `RESYNC_REFUSED`; only the dashboard's signed time moves further."""
    current, _ = advance(mark, reading)
    ahead = verified - current.trusted
    if abs(ahead) <= JUMP_TOLERANCE:
        return None, None
    if ahead < timedelta(0) or ahead > allowance:
        why = ("backwards" if ahead < timedelta(0)
               else f"beyond the {allowance.total_seconds():.0f} s allowance")
        return None, ClockEvent(ClockEventKind.RESYNC_REFUSED, current.trusted, ahead.total_seconds(),
                                f"NTP {why}: needs the dashboard's signed time")
    new = replace(_mark(reading, verified), zone=reading.zone)
    return new, ClockEvent(ClockEventKind.RESYNC, verified, ahead.total_seconds())


MAX_SERVER_STEP = timedelta(days=400)  # the most a signed server time may move the clock


def forward_resync(mark: Watermark, reading: ClockReading, verified: datetime,
                   max_step: timedelta = MAX_SERVER_STEP) -> tuple[Watermark, ClockEvent] | None:
    """Adopt a time from an authenticated source that is not the device's own (the
    dashboard's signed time), only forward and by at most `max_step`: a lying server can
    never give the child time back, nor throw the clock years ahead. None when the time
    is not ahead of the trusted one by more than the tolerance."""
    current, _ = advance(mark, reading)
    ahead = verified - current.trusted
    if ahead <= JUMP_TOLERANCE:
        return None
    step = min(ahead, max_step)
    target = current.trusted + step
    new = replace(_mark(reading, target), zone=reading.zone)
    detail = "" if step == ahead else f"capped: the source was {ahead.total_seconds():.0f} s ahead"
    return new, ClockEvent(ClockEventKind.RESYNC, target, step.total_seconds(), detail)


def _mark(reading: ClockReading, trusted: datetime) -> Watermark:
    return Watermark(reading.boot_id, reading.boottime_ns, trusted, reading.wall - trusted, reading.zone)
