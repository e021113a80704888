"""kill -9 of the agent while the session is locked: after a restart the session is locked
again within 2 s and no usage is lost. The agent is a real process (SystemClock, the SQLite
store, Agent.run, the session layer) on a private bus with python-dbusmock's logind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.sessionbus import CHILD_UID, FakeLogind, until

from agent.core.activity import SESSION, Closed
from agent.core.usage import Interval, total
from agent.dev import devbus
from agent.store.state import StateStore

BUDGET_MINUTES = 1
SEEDED_SECONDS = 52  # so the 1-minute budget runs out a few seconds after the start


def noon_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about noon now: no local midnight during the test."""
    offset = (12 - now.hour + 12) % 24 - 12  # -12..11
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def used_seconds(state: Path, since: datetime) -> float:
    store = StateStore(state / "state.sqlite")
    try:
        return total(store.usage_since(since).active).total_seconds()
    finally:
        store.close()


class Runner:
    def __init__(self, bus: devbus.PrivateBus, tmp: Path, policy: Path) -> None:
        self.bus, self.tmp, self.policy = bus, tmp, policy
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"agent-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.daemon", "--state", str(self.tmp / "state"), "--policy",
             str(self.policy), "--bus-address", self.bus.address, "--child-uid", str(CHILD_UID)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def runner(tmp_path: Path, logind_bus: devbus.PrivateBus) -> Iterator[Runner]:
    r = Runner(logind_bus, tmp_path, tmp_path / "policy.toml")
    try:
        yield r
    finally:
        r.stop()


@pytest.mark.slow
async def test_kill_9_while_locked(runner: Runner, fake_logind: FakeLogind, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    zone = noon_zone(now)
    runner.policy.write_text(
        f'version = 1\nage_band = "8-12"\ntimezone = "{zone}"\n'
        'waive = ["windows", "curfew", "school", "rest", "games"]\n'
        f"[budget]\nevery_day = {BUDGET_MINUTES}\n[enforcement]\nlanguage = \"en\"\ntime_up = \"lock\"\n")
    (tmp_path / "state").mkdir()
    seeded = StateStore(tmp_path / "state" / "state.sqlite")
    start = now - timedelta(minutes=5)
    seeded.commit_tick([Closed(SESSION, Interval(start, start + timedelta(seconds=SEEDED_SECONDS)))])
    seeded.close()
    await fake_logind.add_session("c1")

    first = runner.start()
    await until(lambda: first.poll() is None and _locked_calls_seen(runner), timeout=30,
                what="the first agent locked the session")
    await until_locked(fake_logind)
    # Once the locker reports the lock, the agent stops counting and commits the interval.
    await until(lambda: used_seconds(tmp_path / "state", start) >= BUDGET_MINUTES * 60 - 1,
                what="the spent budget committed")
    used_before = used_seconds(tmp_path / "state", start)

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    await fake_logind.set("c1", LockedHint=False)  # the child unlocks while the agent is down
    assert not await fake_logind.locked("c1")

    began = time.monotonic()
    runner.start()
    while not await fake_logind.locked("c1"):
        assert time.monotonic() - began < 2.0, "not re-locked within 2 s of the restart"
        await _sleep()
    took = time.monotonic() - began
    print(f"re-locked {took:.2f} s after the restart (process start included)")
    used_after = used_seconds(tmp_path / "state", start)
    assert used_after >= used_before  # nothing committed was lost
    assert len(await fake_logind.calls("LockSession")) >= 2


def _locked_calls_seen(runner: Runner) -> bool:
    return any("lock: " in p.read_text() for p in runner.tmp.glob("agent-*.log"))


async def until_locked(fake_logind: FakeLogind) -> None:
    deadline = time.monotonic() + 5
    while not await fake_logind.locked("c1"):
        assert time.monotonic() < deadline, "session not locked"
        await _sleep()


async def _sleep() -> None:
    await asyncio.sleep(0.02)
