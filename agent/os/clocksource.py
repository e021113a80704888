"""Where the trusted clock's readings come from: the `ClockSource` protocol and the OS.

`SystemClock` reads the wall clock, CLOCK_BOOTTIME (which keeps counting in suspend) and the
kernel's boot ID. The development mode's `SimulatedClock` and the tests' `ManualClock` live
in `agent.dev.clock`. All of them feed the same pure `agent.core.clock.advance` (through
`agent.runtime.clock.TrustedClock`), so the code under test is the code that runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
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
