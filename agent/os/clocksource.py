"""Where the trusted clock's readings come from: the OS, or a simulated clock.

`SystemClock` reads the wall clock, CLOCK_BOOTTIME (which keeps counting in suspend) and the
kernel's boot ID. `SimulatedClock` runs a fake timeline faster than real time for the
development mode; `ManualClock` is moved by hand in tests. All three feed the same pure
`agent.core.clock.advance`, so the code under test is the code that runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from agent.core.clock import ClockReading

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# systemd-timesyncd touches this (root-only) file each time it synchronises with NTP.
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


class ClockSource(Protocol):
    def read(self) -> ClockReading: ...

    def synchronized_wall(self) -> datetime | None:
        """The wall time, if a source the child cannot control vouched for it since the
        last call (NTP by systemd-timesyncd); else None."""

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""


def device_zone() -> str:
    """The device's configured timezone name (recorded for tamper events only)."""
    tz = os.environ.get("TZ")
    if tz:
        return tz.lstrip(":")
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else target


class SystemClock:
    def __init__(self, timesync_flag: Path = TIMESYNC_FLAG) -> None:
        self.boot_id = BOOT_ID.read_text().strip()
        self.timesync_flag = timesync_flag
        self._synced_mtime: int | None = None

    def synchronized_wall(self) -> datetime | None:
        try:
            st = self.timesync_flag.stat()
        except OSError:
            return None
        if st.st_uid != 0 or st.st_mtime_ns == self._synced_mtime:
            return None
        self._synced_mtime = st.st_mtime_ns
        return datetime.now(UTC)

    def read(self) -> ClockReading:
        return ClockReading(
            wall=datetime.now(UTC),
            boottime_ns=time.clock_gettime_ns(time.CLOCK_BOOTTIME),
            boot_id=self.boot_id,
            zone=device_zone(),
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SimulatedClock:
    """A timeline starting at `start` that runs `speed` times faster than real time."""

    def __init__(self, start: datetime, speed: float, boot_id: str = "simulated") -> None:
        self.start, self.speed, self.boot_id = start, speed, boot_id
        self._real0 = time.monotonic()

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def read(self) -> ClockReading:
        elapsed = self._elapsed()
        return ClockReading(
            wall=self.start + timedelta(seconds=elapsed),
            boottime_ns=int(elapsed * 1e9),
            boot_id=self.boot_id,
            zone="UTC",
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def synchronized_wall(self) -> datetime | None:
        return None


class ManualClock:
    """Moved only by the test: `advance(seconds)`, `set_wall(...)`, `reboot(...)`."""

    def __init__(self, wall: datetime, boot_id: str = "boot-1", zone: str = "UTC") -> None:
        self.wall, self.boottime_ns, self.boot_id, self.zone = wall, 10**9, boot_id, zone
        self.ntp_wall: datetime | None = None  # set by a test: NTP vouches for this wall time

    def synchronized_wall(self) -> datetime | None:
        wall, self.ntp_wall = self.ntp_wall, None
        return wall

    def read(self) -> ClockReading:
        return ClockReading(self.wall, self.boottime_ns, self.boot_id, self.zone)

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.boottime_ns += int(seconds * 1e9)

    def set_wall(self, wall: datetime) -> None:
        """What `date -s` does: the wall clock moves, boot time does not."""
        self.wall = wall

    def reboot(self, boot_id: str, wall: datetime | None = None) -> None:
        self.boot_id, self.boottime_ns = boot_id, 10**9
        if wall is not None:
            self.wall = wall

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)
