"""The gate process killed or hung while an exec waits: what happens, and recovery.

Measured facts these tests pin down (figures printed with -s):
- SIGKILL while an exec waits: the kernel closes the fanotify group and lets the pending
  exec through (fail-open) within milliseconds; a blocked app RUNS in that window.
- The supervisor sees the death at once (EOF on the gate's stdout), reports the outage
  start (the daemon locks the session), restarts the gate, and reports the end when the
  new gate is marked and ready: the bound is one Python start of agent.os.gateproc.
- A hung gate freezes every exec on its filesystems until the watchdog kills it
  (ping_timeout), then the same recovery.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gatekit
import pytest

from agent.os.catalogue import AppInfo
from agent.os.execgate import Blocked
from agent.os.gateproc import GateOutage, GateSupervisor
from agent.os.gatetable import GateConfig, build_table

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]

OUTAGE_BOUND_S = 10.0  # generous for a loaded 2-core CI machine; typical figures are printed
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Recorder:
    outages: list[GateOutage] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def outage(self, o: GateOutage) -> None:
        self.outages.append(o)
        if not o.started:
            self.ended.set()


@dataclass
class Env:
    fs: Path
    apps: dict[str, AppInfo]
    config: GateConfig
    sup: GateSupervisor
    rec: Recorder

    def exe(self, name: str) -> str:
        return str(self.fs / "apps" / name)


def make_env(ping_interval: float, ping_timeout: float) -> Iterator[Env]:
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        access = gatekit.access(allowed=["org.example.Chess"], blocked=["org.example.Game"])
        rec = Recorder()
        sup = GateSupervisor(
            [str(fs)],
            build_table(apps, access, config, 1),
            rec.blocked.append,
            rec.outage,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        old_cwd = os.getcwd()
        os.chdir(REPO)  # `python -m agent.os.gateproc` from the project
        try:
            sup.start()
        finally:
            os.chdir(old_cwd)
        try:
            yield Env(fs, apps, config, sup, rec)
        finally:
            pid = sup.pid
            if pid is not None:  # a test may leave the gate stopped: resume it first
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            sup.stop()


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env(ping_interval=0.2, ping_timeout=600)


@pytest.fixture
def watched_env() -> Iterator[Env]:
    yield from make_env(ping_interval=0.1, ping_timeout=1.0)


def _exec_blocked_game(env: Env) -> subprocess.Popen[str]:
    """The child execs the blocked app from sh's `exec`: rc 0 if it ran, 126 if denied."""
    return subprocess.Popen(
        ["sh", "-c", 'exec "$0"', env.exe("game")],
        user=gatekit.CHILD_UID,
        group=gatekit.CHILD_UID,
        extra_groups=[],
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )


def _wait_until_exec_waits_on_gate(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    """Deterministic: the kernel stack shows the exec parked in fanotify's permission wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stack = Path(f"/proc/{proc.pid}/stack").read_text()
        except OSError:
            stack = ""
        if "fanotify" in stack:
            return
        assert proc.poll() is None, "the exec finished without waiting on the gate"
        time.sleep(0.005)
    raise AssertionError("exec never reached the fanotify permission wait")


def test_gate_killed_while_exec_waits_fails_open_then_recovers(env: Env) -> None:
    assert gatekit.as_child(["sh", "-c", env.exe("game")]).returncode == 126
    gate_pid = env.sup.pid
    assert gate_pid is not None
    os.kill(gate_pid, signal.SIGSTOP)  # the gate stops reading: the next exec must wait
    proc = _exec_blocked_game(env)
    try:
        _wait_until_exec_waits_on_gate(proc)
        killed = time.monotonic()
        os.kill(gate_pid, signal.SIGKILL)
        rc = proc.wait(timeout=10)
        released = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Exactly what happens: the group closes with the process and the kernel ALLOWS the
    # waiting exec. The blocked app ran.
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    assert env.rec.ended.wait(OUTAGE_BOUND_S), "the gate was not back within the bound"
    start, end = env.rec.outages
    assert start.started and start.cause == "gate exited with -9"
    assert not end.started and end.seconds is not None and end.seconds < OUTAGE_BOUND_S
    assert env.sup.pid != gate_pid and env.sup.restarts == 1
    # Enforcing again, with the same table.
    assert gatekit.as_child(["sh", "-c", env.exe("game")]).returncode == 126
    assert gatekit.as_child([env.exe("chess")]).returncode == 0
    print(
        f"\nfail-open: waiting exec released {released * 1000:.1f} ms after SIGKILL; "
        f"outage (death seen -> new gate ready) {end.seconds * 1000:.0f} ms"
    )


def test_hung_gate_is_killed_by_the_watchdog_and_replaced(watched_env: Env) -> None:
    env = watched_env
    gate_pid = env.sup.pid
    assert gate_pid is not None
    os.kill(gate_pid, signal.SIGSTOP)
    proc = _exec_blocked_game(env)
    try:
        _wait_until_exec_waits_on_gate(proc)
        stalled = time.monotonic()
        rc = proc.wait(timeout=30)  # released when the watchdog kills the hung gate
        frozen = time.monotonic() - stalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0  # fail-open at the kill, as above
    assert env.rec.ended.wait(OUTAGE_BOUND_S)
    assert env.rec.outages[0].cause == "gate exited with -9"
    assert gatekit.as_child(["sh", "-c", env.exe("game")]).returncode == 126
    print(f"\nhung gate: execs frozen {frozen:.2f} s (ping_timeout 1.0 s) before the kill")


def test_supervised_gate_takes_policy_updates_and_reports_blocks(env: Env) -> None:
    apps, config = env.apps, env.config
    assert gatekit.as_child([env.exe("chess")]).returncode == 0
    env.sup.update(build_table(apps, gatekit.access(blocked=["org.example.Chess"]), config, 2))
    deadline = time.monotonic() + 10
    while gatekit.as_child(["sh", "-c", env.exe("chess")]).returncode != 126:
        assert time.monotonic() < deadline, "the new table never reached the gate"
    for _ in range(3):
        assert gatekit.as_child(["sh", "-c", env.exe("chess")]).returncode == 126
    deadline = time.monotonic() + 10
    while not env.rec.blocked:
        assert time.monotonic() < deadline, "no blocked report from the gate process"
        time.sleep(0.01)
    assert [(b.app_id, b.reason) for b in env.rec.blocked] == [("org.example.Chess", "blocked")]
