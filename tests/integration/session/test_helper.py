"""The whole path a child sees: logind session counted -> warned -> locked, the session
helper's desktop notifications (python-dbusmock's notification_daemon on a private session
bus), and the notification actions reaching the agent.

The helper runs inside the test process (root), so here the service's child uid is root's;
that callers are told apart by uid is tested in test_service.py with real other users.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbus_fast.aio import MessageBus
from support.notifications import FakeNotifications
from support.runtime import agent_on
from support.scenario import iso, policy
from support.sessionbus import CHILD_UID, FakeLogind, until

from agent.api.agent_controller import AgentController
from agent.api.service import AgentService
from agent.dev import devbus
from agent.dev.clock import ManualClock
from agent.helper.session_helper import SessionHelper
from agent.os.logind import LogindWatcher
from agent.os.session_enforcer import SessionEnforcer
from agent.runtime.agent import Agent
from agent.store.state import StateStore


@dataclass
class Rig:
    agent: Agent
    clock: ManualClock
    controller: AgentController
    logind: FakeLogind
    notifications: FakeNotifications
    helper: SessionHelper

    def minutes(self, n: float) -> None:
        self.clock.advance(n * 60)
        self.agent.tick()

    async def notify_count(self, n: int) -> list[list[Any]]:
        got: list[list[Any]] = []

        async def enough() -> bool:
            got[:] = await self.notifications.notifies()
            return len(got) >= n

        deadline = asyncio.get_running_loop().time() + 5
        while not await enough():
            assert asyncio.get_running_loop().time() < deadline, f"{n} Notify calls: {got}"
            await asyncio.sleep(0.02)
        return got


@pytest.fixture
async def rig(tmp_path: Path, logind_bus: devbus.PrivateBus,
              fake_logind: FakeLogind) -> AsyncIterator[Rig]:
    session_bus = devbus.start_bus(system=False, agent_policy=None)
    session_bus.start_mock("notification_daemon", system=False)
    await fake_logind.add_session("c1")
    clock = ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai")
    agent = agent_on(StateStore(tmp_path / "state.sqlite"), clock)
    agent.policy = policy(waive=["windows", "curfew", "school", "rest", "games"],
                          budget={"every_day": 10}, enforcement={"language": "en"})
    controller = AgentController(agent)
    service = AgentService(controller, os.getuid(), bus_address=logind_bus.address)
    controller.answered = service.request_answered
    watcher = LogindWatcher(CHILD_UID, agent.set_counting, bus_address=logind_bus.address)
    enforcer = SessionEnforcer(watcher, service, language="en", recheck_seconds=0.5)
    agent.subscribe(enforcer.apply)
    agent.subscribe(service.refresh)
    await service.start()
    await watcher.start()
    agent.tick()
    helper = SessionHelper(system_address=logind_bus.address, session_address=session_bus.address)
    await helper.start()
    notify_client = await MessageBus(bus_address=session_bus.address).connect()
    backstop = asyncio.ensure_future(enforcer.run())
    try:
        yield Rig(agent, clock, controller, fake_logind, FakeNotifications(notify_client), helper)
    finally:
        enforcer.stop()
        await backstop
        await helper.stop()
        notify_client.disconnect()
        await watcher.stop()
        await service.stop()
        agent.store.close()
        session_bus.stop()


async def test_counted_warned_locked_and_asking_for_more_time(rig: Rig) -> None:
    assert rig.helper.language == "en"  # read from the agent's status
    rig.minutes(5)
    [warn5] = await rig.notify_count(1)
    app, replaces, _icon, summary, body, actions, hints, timeout = warn5
    assert timeout == -1  # the notification server's default
    assert (app, replaces, summary, body) == ("minormode", 0, "Time is almost up",
                                              "5 minutes left. Time to finish up. Back tomorrow at 00:00.")
    assert actions == ["more-time", "Ask for more time"] and hints["urgency"] == 1
    rig.minutes(4)
    warn1 = (await rig.notify_count(2))[1]
    assert warn1[4] == "1 minute left. Save your work now. Back tomorrow at 00:00."
    assert warn1[1] == 1  # replaces the 5-minute warning (the mock's first id)

    rig.minutes(1)
    time_up = (await rig.notify_count(3))[2]
    # The limited mode (the default): the time-up screen says what still works; no screen lock.
    assert time_up[3:5] == ["Time is up", "Today's screen time is used up. Back tomorrow at 00:00. Calls, emergency and the learning apps your guardian chose still work."]
    assert time_up[5] == ["more-time", "Ask for more time", "report", "Get help / report"]
    assert time_up[6]["urgency"] == 2 and time_up[7] == 0  # critical, stays until dismissed
    await until(lambda: rig.agent.tracker.active_since is None, what="no longer counting")
    assert await rig.logind.calls("LockSession") == []

    # A helper started now (login, restart) shows the lock at once.
    late = SessionHelper(system_address=rig.helper.system_address,
                         session_address=rig.helper.session_address)
    await late.start()
    try:
        again = (await rig.notify_count(4))[3]
        assert again[3:5] == ["Time is up", "Today's screen time is used up. Back tomorrow at 00:00. Calls, emergency and the learning apps your guardian chose still work."]
    finally:
        await late.stop()

    # The child clicks "ask for more time" on the time-up notification.
    await rig.notifications.click(1, "more-time")
    await until(lambda: bool(rig.controller.pending), what="request queued")
    [request] = rig.controller.pending.values()
    assert request.minutes == 15
    sent = (await rig.notify_count(5))[4]
    assert sent[4] == "Your request for more time was sent: waiting for your guardian."

    # The guardian says yes: the child is told, and the lock period ends.
    rig.controller.answer_request(request.id, approved=True)
    answered = (await rig.notify_count(6))[5]
    assert answered[4] == "Your guardian said yes: 15 more minutes."
    assert rig.agent.decision is not None and not rig.agent.decision.locked


async def test_actions_on_notifications_that_are_not_ours_do_nothing(rig: Rig) -> None:
    await rig.notifications.click(77, "more-time")
    rig.minutes(5)
    await rig.notify_count(1)  # the warning proves the helper processed signals since
    await asyncio.sleep(0.1)
    assert rig.controller.pending == {}


async def test_the_helper_program_runs_and_stops_cleanly(tmp_path: Path,
                                                         logind_bus: devbus.PrivateBus) -> None:
    """The console script as a process: it shows a warning, and SIGTERM ends it with 0."""
    session_bus = devbus.start_bus(system=False, agent_policy=None)
    session_bus.start_mock("notification_daemon", system=False)
    agent = agent_on(StateStore(tmp_path / "state.sqlite"),
                     ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai"))
    service = AgentService(AgentController(agent), os.getuid(), bus_address=logind_bus.address)
    await service.start()
    notify_client = await MessageBus(bus_address=session_bus.address).connect()
    script = Path(sys.executable).with_name("minormode-session-helper")
    proc = await asyncio.create_subprocess_exec(
        str(script), "--system-bus", logind_bus.address, "--session-bus", session_bus.address,
        stderr=asyncio.subprocess.PIPE)
    try:
        fake = FakeNotifications(notify_client)
        deadline = asyncio.get_running_loop().time() + 15
        while not await fake.notifies():  # until the helper is up, warn again
            assert asyncio.get_running_loop().time() < deadline, "the helper never notified"
            service.warning(5, "5 minutes left. Time to finish up.")
            await asyncio.sleep(0.2)
        assert (await fake.notifies())[0][4] == "5 minutes left. Time to finish up."
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify_client.disconnect()
        await service.stop()
        agent.store.close()
        session_bus.stop()
