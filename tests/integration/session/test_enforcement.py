"""Budget reached -> LockSession; an unlock during the lock is undone within 2 s; warnings at
the right moments. The real Agent (trusted clock, store, decide) on a ManualClock, the real
logind adapter and enforcer, python-dbusmock's logind with an emulated screen locker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from support.runtime import agent_on
from support.scenario import iso, policy
from support.sessionbus import CHILD_UID, FakeLogind, until

from agent.core.decision import LockReason
from agent.core.grants import GrantSource
from agent.dev import devbus
from agent.dev.clock import ManualClock
from agent.os.lockproof import LockerProcesses
from agent.os.logind import LogindWatcher, SessionState
from agent.os.session_enforcer import LockProof, SessionEnforcer
from agent.runtime.agent import Agent
from agent.store.state import StateStore

WAIVED = ["windows", "curfew", "school", "rest", "games"]


@dataclass
class Notices:
    got: list[tuple[str, Any, str]] = field(default_factory=list)

    def warning(self, minutes_left: int, message: str) -> None:
        self.got.append(("warning", minutes_left, message))

    def rest_reminder(self, message: str) -> None:
        self.got.append(("rest", None, message))

    def time_up(self, reason: str, message: str) -> None:
        self.got.append(("time_up", reason, message))


@dataclass
class Rig:
    agent: Agent
    clock: ManualClock
    watcher: LogindWatcher
    enforcer: SessionEnforcer
    notices: Notices
    logind: FakeLogind

    def minutes(self, n: float) -> None:
        """n minutes of true time pass; the agent re-decides (as its loop would)."""
        self.clock.advance(n * 60)
        self.agent.tick()

    async def shut(self, backstop: asyncio.Future[None]) -> None:
        self.enforcer.stop()
        await backstop
        await self.watcher.stop()
        self.agent.store.close()


def trust_the_hint(session: SessionState) -> bool:
    """For the tests of re-locking: the emulated locker's hint stands for a verified lock
    (what verifies it on a device is `LockerProcesses`, tested below)."""
    return session.locked


async def make_rig(tmp: Path, bus: devbus.PrivateBus, logind: FakeLogind, budget: int = 10,
                   lock_grace_seconds: float = 60.0, reassert_seconds: float = 15.0,
                   lock_proof: LockProof | None = trust_the_hint, **pol: Any) -> Rig:
    clock = ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai")  # a Saturday
    agent = agent_on(StateStore(tmp / "state.sqlite"), clock)
    pol.setdefault("enforcement", {"time_up": "lock"})  # these tests are about the screen lock
    agent.policy = policy(waive=WAIVED, budget={"every_day": budget}, **pol)
    watcher = LogindWatcher(CHILD_UID, agent.set_counting, bus_address=bus.address)
    notices = Notices()
    enforcer = SessionEnforcer(watcher, notices, language="en",
                               lock_grace_seconds=lock_grace_seconds, lock_proof=lock_proof,
                               recheck_seconds=0.5, reassert_seconds=reassert_seconds)
    agent.subscribe(enforcer.apply)
    await watcher.start()
    agent.tick()
    return Rig(agent, clock, watcher, enforcer, notices, logind)


@pytest.fixture
async def rig(tmp_path: Path, logind_bus: devbus.PrivateBus,
              fake_logind: FakeLogind) -> AsyncIterator[Rig]:
    await fake_logind.add_session("c1")
    r = await make_rig(tmp_path, logind_bus, fake_logind)
    backstop = asyncio.ensure_future(r.enforcer.run())
    try:
        yield r
    finally:
        r.enforcer.stop()
        await backstop
        await r.watcher.stop()
        r.agent.store.close()


async def test_warnings_then_lock_then_relock(rig: Rig) -> None:
    assert rig.watcher.counting is True and rig.agent.tracker.active_since is not None
    rig.minutes(4)
    assert rig.notices.got == []
    rig.minutes(1)  # 5 minutes left
    assert rig.notices.got == [("warning", 5, "5 minutes left. Time to finish up. Back tomorrow at 00:00.")]
    rig.minutes(2)
    assert len(rig.notices.got) == 1  # the 5-minute warning is not repeated
    rig.minutes(2)  # 1 minute left
    assert rig.notices.got[-1] == ("warning", 1, "1 minute left. Save your work now. Back tomorrow at 00:00.")
    assert await rig.logind.calls("LockSession") == []
    rig.minutes(1)  # budget spent
    decision = rig.agent.decision
    assert decision is not None and decision.locked and decision.reason is LockReason.BUDGET_SPENT
    assert rig.notices.got[-1] == ("time_up", "budget_spent", "Today's screen time is used up. Back tomorrow at 00:00.")
    await until(lambda: rig.watcher.sessions[next(iter(rig.watcher.sessions))].locked,
                what="session locked")
    assert await rig.logind.calls("LockSession") == [["c1"]]
    assert rig.watcher.counting is False and rig.agent.tracker.active_since is None

    # The child unlocks the screen locker (it knows its own password).
    for _ in range(2):
        before = len(await rig.logind.calls("LockSession"))
        asked = rig.enforcer.stats.lock_calls
        await rig.logind.set("c1", LockedHint=False)
        took = await until(lambda: rig.enforcer.stats.lock_calls > asked  # noqa: B023
                           and all(s.locked for s in rig.watcher.sessions.values()),
                           timeout=2.0, what="re-locked within 2 s")
        assert await rig.logind.locked("c1")
        assert len(await rig.logind.calls("LockSession")) > before
        assert took < 2.0
    # Counted time: exactly the budget, not the seconds of the unlock.
    rig.minutes(5)
    assert rig.agent.decision is not None and rig.agent.decision.used_seconds == 600


async def test_unlock_signal_is_undone_and_backstop_catches_silent_unlocks(rig: Rig) -> None:
    rig.minutes(10)
    await until(lambda: all(s.locked for s in rig.watcher.sessions.values()), what="locked")
    before = len(await rig.logind.calls("LockSession"))
    # logind's Unlock signal (someone called UnlockSession): re-locked even before a hint.
    await rig.logind.mock("/org/freedesktop/login1/session/c1", "EmitSignal", "sssav",
                          ["org.freedesktop.login1.Session", "Unlock", "", []])
    deadline = asyncio.get_running_loop().time() + 2.0
    while len(await rig.logind.calls("LockSession")) <= before:
        assert asyncio.get_running_loop().time() < deadline, "no LockSession within 2 s"
        await asyncio.sleep(0.02)
    await until(lambda: rig.watcher.locked, what="the locker reported the re-lock")
    # A signal the adapter never saw: only the periodic check finds it.
    asked = rig.enforcer.stats.lock_calls
    rig.watcher.sessions = {p: replace(s, locked=False) for p, s in rig.watcher.sessions.items()}
    before = len(await rig.logind.calls("LockSession"))
    await until(lambda: rig.enforcer.stats.lock_calls > asked, timeout=2.0, what="backstop relock")
    assert len(await rig.logind.calls("LockSession")) > before


async def test_lock_ends_when_more_time_is_granted(rig: Rig) -> None:
    rig.minutes(10)
    await until(lambda: rig.enforcer.lock_wanted and rig.watcher.locked, what="locked")
    rig.agent.grant_minutes(15, GrantSource.LOCAL_ADMIN)
    rig.agent.tick()
    assert rig.agent.decision is not None and not rig.agent.decision.locked
    assert rig.enforcer.lock_wanted is False
    # The child unlocks now: nothing re-locks it, and time counts again.
    calls = len(await rig.logind.calls("LockSession"))
    await rig.logind.set("c1", LockedHint=False)
    await until(lambda: rig.watcher.counting is True, what="counting again")
    await asyncio.sleep(0.7)  # longer than the backstop period
    assert len(await rig.logind.calls("LockSession")) == calls


async def test_terminate_as_last_resort(tmp_path: Path, logind_bus: devbus.PrivateBus,
                                        fake_logind: FakeLogind) -> None:
    """A session whose locker never locks is ended after the grace."""
    await fake_logind.add_session("c1")
    # No screen locker: LockSession only logs the call, LockedHint stays false.
    await fake_logind.mock("/org/freedesktop/login1", "AddMethod", "sssss",
                           ["org.freedesktop.login1.Manager", "LockSession", "s", "", ""])
    r = await make_rig(tmp_path, logind_bus, fake_logind, lock_grace_seconds=1.0)
    backstop = asyncio.ensure_future(r.enforcer.run())
    try:
        r.minutes(10)
        await until(lambda: r.enforcer.stats.terminations == 1, timeout=4.0, what="terminated")
        assert await fake_logind.calls("TerminateSession") == [["c1"]]
        assert len(await fake_logind.calls("LockSession")) >= 2
    finally:
        r.enforcer.stop()
        await backstop
        await r.watcher.stop()
        r.agent.store.close()


async def test_rest_reminder_once_per_streak_and_a_pause_resets_it(
        tmp_path: Path, logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    await fake_logind.add_session("c1")
    r = await make_rig(tmp_path, logind_bus, fake_logind, budget=120)
    r.agent.policy = policy(waive=["windows", "curfew", "school", "games"],
                            budget={"every_day": 120},
                            rest={"after_minutes": 20, "break_minutes": 5, "enforce": False})
    try:
        r.minutes(19)
        assert r.notices.got == []
        r.minutes(1)
        assert r.notices.got == [
            ("rest", None, "You have been on for 20 minutes. Rest your eyes for a bit.")]
        r.minutes(3)
        assert len(r.notices.got) == 1  # not repeated while the streak goes on
        # The child goes idle for 6 minutes (a real break), then comes back.
        await fake_logind.set("c1", IdleHint=True)
        await until(lambda: r.watcher.counting is False, what="idle")
        r.minutes(6)
        await fake_logind.set("c1", IdleHint=False)
        await until(lambda: r.watcher.counting is True, what="back")
        r.minutes(19)
        assert len(r.notices.got) == 1  # a new streak: 19 minutes so far
        r.minutes(1)
        assert len(r.notices.got) == 2 and r.notices.got[-1][0] == "rest"
    finally:
        await r.watcher.stop()
        r.agent.store.close()


async def test_a_session_claiming_to_be_locked_is_locked_again_now_and_then(
        tmp_path: Path, logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    """LockedHint comes from the child's own locker and can be faked: during a lock period
    LockSession is repeated every reassert period even while the hint says locked."""
    await fake_logind.add_session("c1")
    r = await make_rig(tmp_path, logind_bus, fake_logind, reassert_seconds=0.6)
    backstop = asyncio.ensure_future(r.enforcer.run())
    try:
        r.minutes(10)
        await until(lambda: r.watcher.locked, what="locked")
        first = len(await fake_logind.calls("LockSession"))
        await until(lambda: r.enforcer.stats.reasserts >= 2, timeout=4.0, what="two re-asserts")
        assert r.watcher.locked  # nothing looked unlocked: these were re-asserts
        assert len(await fake_logind.calls("LockSession")) >= first + 2
    finally:
        r.enforcer.stop()
        await backstop
        await r.watcher.stop()
        r.agent.store.close()


async def test_a_new_session_during_a_lock_is_locked_too(rig: Rig) -> None:
    """Logging in again on another VT does not escape a lock period."""
    rig.minutes(10)
    await until(lambda: rig.watcher.locked, what="locked")
    await rig.logind.add_session("c2", announce=True)
    took = await until(lambda: len(rig.watcher.sessions) == 2 and rig.watcher.locked,
                       timeout=2.0, what="the new session locked within 2 s")
    assert ["c2"] in await rig.logind.calls("LockSession")
    assert took < 2.0 and rig.watcher.counting is False


@contextlib.contextmanager
def root_owned_locker() -> Iterator[Path]:
    """A screen locker program at a root-owned path the child can reach (a copy of sleep:
    what matters to the proof is which file the process runs)."""
    where = Path(tempfile.mkdtemp(prefix="mm-locker-"))
    where.chmod(0o755)
    locker = where / "locker"
    shutil.copy2("/bin/sleep", locker)
    locker.chmod(0o755)
    try:
        yield locker
    finally:
        shutil.rmtree(where)


def as_child(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), user=CHILD_UID, group=CHILD_UID, extra_groups=[], cwd="/")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs processes as the child")
async def test_a_faked_locked_hint_does_not_hold_the_lock(
        tmp_path: Path, logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    """The child's own locker configuration never locks, and the child sets LockedHint
    itself (or a copy of the locker runs from a path of its own): no verified lock, so the
    session is ended once the grace is over."""
    await fake_logind.add_session("c1")
    await fake_logind.mock("/org/freedesktop/login1", "AddMethod", "sssss",
                           ["org.freedesktop.login1.Manager", "LockSession", "s", "", ""])
    with root_owned_locker() as locker:
        own_copy = Path(tempfile.mkdtemp(prefix="mm-childs-")) / "locker"
        shutil.copy2(locker, own_copy)
        os.chown(own_copy, CHILD_UID, CHILD_UID)
        own_copy.parent.chmod(0o755)
        fake = as_child(str(own_copy), "600")  # looks like a locker by name, not by file
        proof = LockerProcesses([locker], frozenset({CHILD_UID}))
        r = await make_rig(tmp_path, logind_bus, fake_logind, lock_grace_seconds=1.0, lock_proof=proof)
        backstop = asyncio.ensure_future(r.enforcer.run())
        try:
            r.minutes(10)
            await until(lambda: r.enforcer.lock_wanted, what="lock wanted")
            await fake_logind.set("c1", LockedHint=True)  # the child's own claim
            await until(lambda: r.watcher.locked, what="hint seen")
            await until(lambda: r.enforcer.stats.terminations == 1, timeout=5.0, what="ended")
            assert await fake_logind.calls("TerminateSession") == [["c1"]]
            assert r.enforcer.stats.verified == 0
        finally:
            fake.kill()
            fake.wait()
            shutil.rmtree(own_copy.parent)
            await r.shut(backstop)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs processes as the child")
async def test_a_running_locker_holds_the_lock_and_killing_it_ends_the_session(
        tmp_path: Path, logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    await fake_logind.add_session("c1")
    with root_owned_locker() as locker:
        proof = LockerProcesses([locker], frozenset({CHILD_UID}))
        r = await make_rig(tmp_path, logind_bus, fake_logind, lock_grace_seconds=1.0, lock_proof=proof)
        backstop = asyncio.ensure_future(r.enforcer.run())
        screen = as_child(str(locker), "600")  # the real locker, started at the lock
        try:
            r.minutes(10)
            await until(lambda: r.watcher.locked, what="locked by the emulated locker")
            await until(lambda: r.enforcer.stats.verified >= 6, timeout=10.0,
                        what="six verified checks: three seconds, three graces")
            assert r.enforcer.stats.terminations == 0
            screen.kill()  # the locker dies (or the child kills it): the hint alone remains
            screen.wait()
            await until(lambda: r.enforcer.stats.terminations == 1, timeout=5.0, what="ended")
        finally:
            if screen.poll() is None:
                screen.kill()
                screen.wait()
            await r.shut(backstop)


async def test_time_up_in_the_limited_mode_leaves_the_screen_open_and_says_what_still_works(
        tmp_path: Path, logind_bus: devbus.PrivateBus, fake_logind: FakeLogind) -> None:
    """The default policy: time up is the limited mode. No LockSession (calls stay usable;
    the exec gate refuses the rest), the time-up notice (the helper's persistent screen with
    "ask for more time") says what still works, and the open session uses no time."""
    await fake_logind.add_session("c1")
    r = await make_rig(tmp_path, logind_bus, fake_logind, enforcement={"language": "en"})
    backstop = asyncio.ensure_future(r.enforcer.run())
    try:
        r.minutes(10)
        d = r.agent.decision
        assert d is not None and d.locked and not d.lock_screen
        assert r.notices.got[-1] == ("time_up", "budget_spent", "Today's screen time is used up. Back tomorrow at 00:00. "
                                     "Calls, emergency and the learning apps your guardian chose still work.")
        checks = r.enforcer.stats.verified + r.enforcer.stats.lock_calls
        r.minutes(1)
        await asyncio.sleep(0)  # let a spawned enforce run if one were due
        assert await fake_logind.calls("LockSession") == []
        assert not r.enforcer.lock_wanted and r.enforcer.stats.lock_calls + r.enforcer.stats.verified == checks
        assert r.watcher.counting is True  # the session is open...
        r.minutes(5)
        assert r.agent.decision is not None and r.agent.decision.used_seconds == 600  # ...and uses nothing
    finally:
        await r.shut(backstop)
