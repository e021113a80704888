"""The logind adapter against python-dbusmock's logind: what counts, and what does not."""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.sessionbus import CHILD_UID, FakeLogind, until

from agent.core.activity import ActivityTracker
from agent.core.usage import total
from agent.dev import devbus
from agent.os.logind import LogindWatcher


class Recorder:
    """Stamps each on_activity call with the test's own clock, as the daemon stamps it with
    trusted time, and feeds the core's ActivityTracker to compute what was counted."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
        self.calls: list[tuple[datetime, bool]] = []
        self.tracker = ActivityTracker()
        self.closed: list = []
        self.changes = 0

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)

    def on_activity(self, counting: bool) -> None:
        self.calls.append((self.now, counting))
        self.tracker, closed = self.tracker.set_counting(counting, self.now)
        self.closed += closed

    def on_change(self, _why: str) -> None:
        self.changes += 1

    def counted_minutes(self) -> float:
        return total(c.interval for c in self.closed).total_seconds() / 60

    @property
    def sequence(self) -> list[bool]:
        return [c for _, c in self.calls]


FORGER = """
import sys, dbus, dbus.lowlevel
conn = dbus.bus.BusConnection(sys.argv[1])
msg = dbus.lowlevel.SignalMessage(sys.argv[2], sys.argv[3], sys.argv[4])
msg.append(*eval(sys.argv[6]), signature=sys.argv[5])
conn.send_message(msg)
conn.flush()
"""


def forge_signal(address: str, path: str, iface: str, member: str, signature: str,
                 args: str) -> None:
    """Send a signal as the child (uid nobody) with Debian's python3-dbus."""
    out = subprocess.run(["/usr/bin/python3", "-c", FORGER, address, path, iface, member,
                          signature, args], user=CHILD_UID, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr


async def watcher_for(bus: devbus.PrivateBus, rec: Recorder, **kw) -> LogindWatcher:
    w = LogindWatcher(CHILD_UID, rec.on_activity, bus_address=bus.address, **kw)
    w.listeners.append(rec.on_change)
    await w.start()
    return w


async def settle(rec: Recorder, before: int) -> None:
    """Wait until the watcher processed at least one more signal."""
    await until(lambda: rec.changes > before, what="the watcher saw the signal")


async def test_active_idle_locked_asleep_and_resume(logind_bus: devbus.PrivateBus,
                                                    fake_logind: FakeLogind) -> None:
    await fake_logind.add_session("c1")
    await fake_logind.add_session("other", uid=1000)  # another user's session is ignored
    rec = Recorder()
    saved: list[bool] = []

    async def before_sleep() -> None:
        saved.append(True)

    w = await watcher_for(logind_bus, rec, before_sleep=before_sleep)
    try:
        assert list(w.sessions) == ["/org/freedesktop/login1/session/c1"]
        assert rec.sequence == [True]  # active at start: counts
        assert w.inhibiting and [i[0] for i in await fake_logind.inhibitors()] == ["sleep"]

        steps = [  # (minutes passing before the event, event, counting afterwards)
            (10, {"IdleHint": True}, False),
            (5, {"IdleHint": False}, True),
            (7, {"LockedHint": True}, False),
            (3, {"IdleHint": True}, False),  # idle while locked: still nothing
            (2, {"LockedHint": False, "IdleHint": False}, True),
            (4, {"Active": False, "State": "online"}, False),  # switched to another session
            (6, {"Active": True, "State": "active"}, True),
        ]
        for minutes, props, expected in steps:
            rec.advance(minutes)
            before = rec.changes
            await fake_logind.set("c1", **props)
            await settle(rec, before)
            assert rec.sequence[-1] is expected, props
        # Suspend: not counted; the delay inhibitor is released only after the hook ran.
        rec.advance(8)
        await fake_logind.sleep(True)
        await until(lambda: not w.inhibiting, what="inhibitor released")
        assert saved == [True] and rec.sequence[-1] is False
        assert await fake_logind.inhibitors() == []
        rec.advance(120)  # asleep for two hours
        before = rec.changes
        await fake_logind.sleep(False)
        await settle(rec, before)
        await until(lambda: w.inhibiting, what="inhibitor taken again")
        assert rec.sequence[-1] is True
        rec.advance(5)
        before = rec.changes
        await fake_logind.remove_session("c1")
        await settle(rec, before)
        assert rec.sequence[-1] is False and w.sessions == {}
    finally:
        await w.stop()
    # Only changes are reported, and the counted time is exactly the active stretches.
    assert rec.sequence == [True, False, True, False, True, False, True, False, True, False]
    assert rec.counted_minutes() == 10 + 7 + 4 + 8 + 5


async def test_a_second_session_appearing_and_leaving(logind_bus: devbus.PrivateBus,
                                                      fake_logind: FakeLogind) -> None:
    rec = Recorder()
    w = await watcher_for(logind_bus, rec)
    try:
        assert rec.sequence == [False]  # no session of the child: nothing counts
        before = rec.changes
        await fake_logind.add_session("c2", announce=True)
        await settle(rec, before)
        assert rec.sequence == [False, True]
        # Another user's new session changes nothing for the child.
        await fake_logind.add_session("x9", uid=1000, announce=True)
        before = rec.changes
        await fake_logind.set("c2", IdleHint=True)
        await settle(rec, before)
        assert rec.sequence == [False, True, False] and len(w.sessions) == 1
    finally:
        await w.stop()


async def test_forged_signals_from_another_connection_are_ignored(
        logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    """The child could send signals on the system bus; only logind's own count."""
    await fake_logind.add_session("c1")
    rec = Recorder()
    w = await watcher_for(logind_bus, rec)
    try:
        for path, iface, member, signature, args in (
            ("/org/freedesktop/login1", "org.freedesktop.login1.Manager", "PrepareForSleep",
             "b", "[True]"),
            ("/org/freedesktop/login1/session/c1", "org.freedesktop.DBus.Properties",
             "PropertiesChanged", "sa{sv}as",
             "['org.freedesktop.login1.Session', {'IdleHint': True}, []]"),
        ):
            forge_signal(logind_bus.address, path, iface, member, signature, args)
        # A real signal afterwards proves the forged ones were delivered first and ignored.
        before = rec.changes
        await fake_logind.set("c1", State="active")
        await settle(rec, before)
        assert rec.sequence == [True] and not w.asleep
    finally:
        await w.stop()


@pytest.mark.parametrize("props", [{"IdleHint": True}, {"LockedHint": True}])
async def test_counting_state_read_at_start(logind_bus: devbus.PrivateBus,
                                            fake_logind: FakeLogind, props: dict) -> None:
    await fake_logind.add_session("c1")
    await fake_logind.set("c1", **props)
    rec = Recorder()
    w = await watcher_for(logind_bus, rec)
    await w.stop()
    assert rec.sequence == [False]


async def test_logind_restarting(logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    """A new logind: sessions are read again and the sleep inhibitor is taken from it."""
    await fake_logind.add_session("c1")
    rec = Recorder()
    w = await watcher_for(logind_bus, rec)
    try:
        old = logind_bus.mocks[0]
        old.terminate()
        old.wait(timeout=10)
        logind_bus.start_mock("logind")
        await until(lambda: rec.sequence[-1] is False, what="no sessions on the new logind")
        await fake_logind.add_session("c1", announce=True)
        await until(lambda: rec.sequence[-1] is True, what="the session seen again")
        await until(lambda: w.inhibiting, what="inhibitor")
        assert [i[0] for i in await fake_logind.inhibitors()] == ["sleep"]
    finally:
        await w.stop()


async def test_with_display_facts_the_childs_hints_do_not_stop_the_count(
        logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    """IdleHint/LockedHint come from the child's own programs: with the display known, a lit
    display in front counts, whatever the hints say; a dark one does not."""
    await fake_logind.add_session("c1")
    rec = Recorder()
    w = await watcher_for(logind_bus, rec)
    try:
        w.set_display(True)
        before = rec.changes
        await fake_logind.set("c1", IdleHint=True, LockedHint=True)  # the child's fake
        await settle(rec, before)
        assert rec.sequence == [True]
        w.set_display(False)  # the panel went dark
        assert rec.sequence == [True, False]
        w.set_display(True)
        before = rec.changes
        await fake_logind.set("c1", Active=False)  # another session in front
        await settle(rec, before)
        assert rec.sequence == [True, False, True, False]
        w.set_display(None)  # display facts lost: the hints stand in again
        before = rec.changes
        await fake_logind.set("c1", Active=True, State="active")
        await settle(rec, before)
        assert rec.sequence[-1] is False  # idle and locked per the hints
    finally:
        await w.stop()


def test_a_bus_that_cannot_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    before = set(Path(tempfile.gettempdir()).glob("minormode-bus-*"))
    with pytest.raises(devbus.DevBusError, match=r"missing\.conf"):
        devbus.start_bus(agent_policy=tmp_path / "missing.conf")
    assert set(Path(tempfile.gettempdir()).glob("minormode-bus-*")) == before


async def test_two_child_accounts_pool_their_sessions(logind_bus: devbus.PrivateBus,
                                                      fake_logind: FakeLogind) -> None:
    await fake_logind.add_session("c1")
    await fake_logind.add_session("s1", uid=1001)  # a sibling's account
    await fake_logind.set("c1", IdleHint=True)
    rec = Recorder()
    w = LogindWatcher(frozenset({CHILD_UID, 1001}), rec.on_activity, bus_address=logind_bus.address)
    w.listeners.append(rec.on_change)
    await w.start()
    try:
        assert len(w.sessions) == 2 and rec.sequence == [True]  # the sibling's session counts
        before = rec.changes
        await fake_logind.set("s1", LockedHint=True)
        await settle(rec, before)
        assert rec.sequence == [True, False]
    finally:
        await w.stop()
    with pytest.raises(ValueError, match="at least one"):
        LogindWatcher(frozenset(), rec.on_activity)
