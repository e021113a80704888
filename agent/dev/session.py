"""Development mode's session: a private bus, a fake logind with one active session of the
developer (as "the child"), an emulated screen locker, and the real session layer on top.

On an ordinary machine (no logind, or one the agent must not lock) this shows the whole
path: the session counts, the warnings and "time is up" go out as Agent1 signals (and to
the log), LockSession locks the fake session and counting stops. The daemon's --dev mode
wires it in a few lines (`agent.runtime.services`, imported there only in development mode):

    dev = DevSession(agent)
    await dev.start()            # before agent.run()
    ...                          # `minormode-session-helper --system-bus dev.address`
    await dev.stop()             #   shows real notifications on the developer's desktop
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex

from dbus_fast import Variant
from dbus_fast.aio import MessageBus

from agent.bus.calls import call
from agent.dev import devbus
from agent.session.layer import SessionAgent, SessionConfig, SessionLayer

log = logging.getLogger("minormode.dev")

SESSION_ID = "dev1"


def export_line(address: str) -> str:
    """The shell line that points minormodectl (and the session helper) at this bus."""
    return f"export DBUS_SYSTEM_BUS_ADDRESS={shlex.quote(address)}   # for minormodectl"


class LoggingNotices:
    """Also print what the child would see (the enforcer's Notifier, chained)."""

    def __init__(self, inner: SessionLayer) -> None:
        self.inner = inner.service

    def warning(self, minutes_left: int, message: str) -> None:
        log.info("child sees warning: %s", message)
        self.inner.warning(minutes_left, message)

    def rest_reminder(self, message: str) -> None:
        log.info("child sees rest reminder: %s", message)
        self.inner.rest_reminder(message)

    def time_up(self, reason: str, message: str) -> None:
        log.info("child sees time up (%s): %s", reason, message)
        self.inner.time_up(reason, message)


class DevSession:
    def __init__(self, agent: SessionAgent, child_uid: int | None = None,
                 guardian_secret: bytes | None = None) -> None:
        self.agent = agent
        self.guardian_secret = guardian_secret
        self.child_uid = os.getuid() if child_uid is None else child_uid
        self.bus: devbus.PrivateBus | None = None
        self.layer: SessionLayer | None = None

    @property
    def address(self) -> str:
        if self.bus is None:
            raise RuntimeError("DevSession.start() was not called")
        return self.bus.address

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.bus = await loop.run_in_executor(
            None, lambda: devbus.start_dev_logind(self.child_uid, session_id=SESSION_ID))
        await loop.run_in_executor(None, devbus.emulate_screen_locker, self.bus)
        self.layer = SessionLayer(self.agent, SessionConfig(child_uid=self.child_uid,
                                                            bus_address=self.bus.address,
                                                            guardian_secret=self.guardian_secret))
        self.layer.enforcer.notifier = LoggingNotices(self.layer)
        # Development only: the emulated locker is the whole screen, so its hint is the proof.
        self.layer.enforcer.lock_proof = lambda session: session.locked
        await self.layer.start()
        log.info("development bus %s: fake logind, session %s of uid %d is active",
                 self.bus.address, SESSION_ID, self.child_uid)
        # On standard output, alone on its line, so it can be pasted (or eval'd) as it is.
        print(export_line(self.bus.address), flush=True)

    async def unlock_as_child(self) -> None:
        """What the child does at the screen locker: LockedHint goes false."""
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            await call(bus, "org.freedesktop.login1",
                       f"/org/freedesktop/login1/session/{SESSION_ID}",
                       "org.freedesktop.DBus.Mock", "UpdateProperties", "sa{sv}",
                       ["org.freedesktop.login1.Session", {"LockedHint": Variant("b", False)}])
        finally:
            bus.disconnect()

    async def stop(self) -> None:
        if self.layer is not None:
            await self.layer.stop()
            self.layer = None
        if self.bus is not None:
            self.bus.stop()
            self.bus = None
