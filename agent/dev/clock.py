"""Clock sources for development and tests: never used on a device.

`SimulatedClock` runs a fake timeline faster than real time (`--dev --speed`);
`ManualClock` is moved by hand in tests. Both implement `agent.os.clocksource.ClockSource`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

from agent.core.clock import ClockReading


class SimulatedClock:
    """A timeline starting at `start` that runs `speed` times faster than real time."""

    def __init__(self, start: datetime, speed: float, boot_id: str | None = None) -> None:
        """Each run is a boot of its own (a fresh boot id): a restart of development mode
        is a reboot to the trusted clock, never boot time running backwards."""
        self.start, self.speed = start, speed
        self.boot_id = boot_id or f"simulated-{uuid.uuid4().hex}"
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
