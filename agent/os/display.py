"""Is a display on? Read by root from sysfs, a fact the child cannot fake while using the device.

IdleHint and LockedHint reach logind from programs running as the child (the desktop's idle
monitor, the screen locker), so a child can set them to stop the count while still using
the device. Whether the panel is lit is different: to use the tablet the child needs it on.
A display is on when a connected DRM connector is enabled with DPMS "On" and, if the device
has a backlight, a backlight is powered (bl_power 0) with brightness above 0. Sysfs
attributes do not notify, so they are polled; `on_change` is called on every change.

Every 5 s, as often as the agent's tick (it was 2 s, the idle agent's largest waker, with
issue 17's goal of one wake-up a second): a change of the panel is seen within 5 s, so
at most 5 s are counted wrongly each time it goes dark or lights up (turning it off and
on to gain time wins 5 s a toggle at most, and the lock grace still runs), against
budgets counted in minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("minormode.display")

DRM = Path("/sys/class/drm")
BACKLIGHT = Path("/sys/class/backlight")
POLL_SECONDS = 5.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def display_on(drm: Path = DRM, backlight: Path = BACKLIGHT) -> bool | None:
    """True/False, or None when this machine shows neither connectors nor backlights."""
    connectors = [c for c in sorted(drm.glob("card*-*")) if _read(c / "status") == "connected"]
    lights = sorted(backlight.glob("*"))
    if not connectors and not lights:
        return None
    screen = not connectors or any(
        _read(c / "enabled") == "enabled" and _read(c / "dpms") == "On" for c in connectors)
    lit = not lights or any(_read(b / "bl_power") == "0" and _brightness(b) > 0 for b in lights)
    return screen and lit


def _brightness(light: Path) -> int:
    text = _read(light / "brightness")
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


class DisplayWatch:
    def __init__(self, on_change: Callable[[bool | None], None], *, drm: Path = DRM,
                 backlight: Path = BACKLIGHT, poll_seconds: float = POLL_SECONDS) -> None:
        self.on_change = on_change
        self.drm, self.backlight, self.poll_seconds = drm, backlight, poll_seconds
        self.on: bool | None = None
        self._stopping = asyncio.Event()

    def check(self) -> bool | None:
        now = display_on(self.drm, self.backlight)
        if now != self.on:
            self.on = now
            log.debug("display on: %s", now)
            self.on_change(now)
        return now

    async def run(self) -> None:
        self.check()
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)
            except TimeoutError:
                self.check()

    def stop(self) -> None:
        self._stopping.set()
