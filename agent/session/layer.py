"""The session layer in one object: logind watcher, enforcer, display watch, the Agent1
service, and the controller between the service and the running agent. The services
wiring (`agent.runtime.services`) starts it in a few lines:

    layer = SessionLayer(agent, SessionConfig(child_uid=frozenset(config.child_uids)))
    await layer.start()          # before agent.run(): the first decision must find it ready
    await agent.run()
    await layer.stop()

Start order matters for failing closed: the service and the watcher are up before the
agent's first tick, so a restart after a crash re-locks a locked day at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.api.agent_controller import AgentController
from agent.api.port import AgentPort
from agent.api.service import BUS_NAME, AgentService
from agent.core.decision import Decision
from agent.os import display
from agent.os.lockproof import LockerProcesses
from agent.os.logind import LogindWatcher
from agent.os.session_enforcer import SessionEnforcer

log = logging.getLogger("minormode.session")


@dataclass(frozen=True)
class SessionConfig:
    child_uid: int | frozenset[int]  # the child account(s); their time is pooled
    bus_address: str | None = None  # None: the system bus
    guardian_secret: bytes | None = None  # shared at pairing; None: codes refused
    unlock_minutes: int = 30  # how long a guardian code unlocks
    recheck_seconds: float = 1.0  # the enforcer's backstop period
    drm: Path = display.DRM  # where root reads whether the display is lit
    backlight: Path = display.BACKLIGHT
    bus_name: str = BUS_NAME
    lockers: tuple[Path, ...] = ()  # screen lockers that prove a lock (agent.os.lockproof)


class SessionAgent(AgentPort, Protocol):
    """The agent as the session layer sees it: the controller's port, and the facts the
    session reports (`agent.runtime.agent.Agent` has them)."""

    def subscribe(self, subscriber: Callable[[Decision, Decision | None], None]) -> None: ...

    def set_counting(self, counting: bool) -> None: ...


class SessionLayer:
    def __init__(self, agent: SessionAgent, config: SessionConfig) -> None:
        self.agent = agent
        self.config = config
        self.controller = AgentController(agent, guardian_secret=config.guardian_secret,
                                          unlock_minutes=config.unlock_minutes)
        self.service = AgentService(self.controller, config.child_uid,
                                    bus_address=config.bus_address, bus_name=config.bus_name)
        self.controller.answered = self.service.request_answered
        self.watcher = LogindWatcher(config.child_uid, agent.set_counting,
                                     before_sleep=self._before_sleep,
                                     bus_address=config.bus_address)
        self.enforcer = SessionEnforcer(
            self.watcher, self.service, recheck_seconds=config.recheck_seconds,
            lock_proof=LockerProcesses(config.lockers, self.watcher.child_uids))
        self.display = display.DisplayWatch(self.watcher.set_display, drm=config.drm,
                                            backlight=config.backlight)
        self._backstop: asyncio.Task[None] | None = None
        self._display_task: asyncio.Task[None] | None = None
        agent.subscribe(self.on_decision)

    def on_decision(self, decision: Decision, previous: Decision | None) -> None:
        """The daemon's subscriber: settings from the policy, then enforce and publish."""
        enforcement = self.agent.policy.enforcement
        self.enforcer.language = enforcement.language
        self.enforcer.lock_grace_seconds = float(enforcement.lock_grace_seconds)
        self.enforcer.apply(decision, previous)
        self.service.refresh()

    async def _before_sleep(self) -> None:
        self.agent.checkpoint()  # commit open usage before the device sleeps

    async def start(self) -> None:
        await self.service.start()
        await self.watcher.start()
        self.display.check()
        self._display_task = asyncio.ensure_future(self.display.run())
        self._backstop = asyncio.ensure_future(self.enforcer.run())
        log.info("session layer up: child uid(s) %s, %d session(s), display %s",
                 sorted(self.watcher.child_uids), len(self.watcher.sessions),
                 "unknown (trusting IdleHint/LockedHint)" if self.display.on is None
                 else ("on" if self.display.on else "off"))

    async def stop(self) -> None:
        self.enforcer.stop()
        self.display.stop()
        for task in (self._backstop, self._display_task):
            if task is not None:
                await task
        await self.watcher.stop()
        await self.service.stop()
