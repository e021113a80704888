"""The gate process killed or hung while an exec waits: what happens, and recovery.

Facts pinned down here (figures printed with -s):
- A gate that owns its fanotify group alone (standalone) and is SIGKILLed while an exec
  waits: the group closes and the kernel lets the exec through (fail-open) within
  milliseconds; a blocked app RUNS. This is what happens if the whole agent dies.
- Supervised, the supervisor holds the group too: the exec waits instead, the new gate
  reads and DENIES it; the wait is bounded by one gate start (printed).
- Events the dead gate had read but not answered are answered by the supervisor from the
  in-flight ledger: denied for the child, allowed for root.
- A hung gate freezes execs until the watchdog kills it (ping_timeout), then the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gatekit
import pytest

from agent.execgate.catalogue import AppInfo
from agent.execgate.loop import Blocked
from agent.execgate.supervisor import GateOutage, GateStartError, GateSupervisor
from agent.execgate.table import GateConfig, build_table, table_to_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]

OUTAGE_BOUND_S = 10.0  # generous for a loaded 2-core CI machine; typical figures are printed


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


def make_env(ping_timeout: float, gate_args: Sequence[str] = ()) -> Iterator[Env]:
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        access = gatekit.access(allowed=["org.example.Chess"], blocked=["org.example.Game"])
        rec = Recorder()
        sup = GateSupervisor(
            [str(fs)],
            build_table(apps, access, config, 1),
            rec.blocked.append,
            rec.outage,
            ping_interval=0.1,
            ping_timeout=ping_timeout,
            gate_args=gate_args,
        )
        sup.start()
        try:
            yield Env(fs, apps, config, sup, rec)
        finally:
            pid = sup.pid
            if pid is not None:  # a test may leave the gate stopped: resume it first
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            sup.stop()


_env = contextlib.contextmanager(make_env)  # a supervised gate with its own ping_timeout


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env(ping_timeout=600)


def _exec(path: str, as_child: bool = True) -> subprocess.Popen[str]:
    """sh's `exec` of `path`: the process's rc is 0 if it ran, 126 if denied."""
    ids = {"user": gatekit.CHILD_UID, "group": gatekit.CHILD_UID, "extra_groups": []}
    return subprocess.Popen(
        ["sh", "-c", 'exec "$0"', path],
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
        **(ids if as_child else {}),  # type: ignore[arg-type]
    )


def _wait_until_exec_waits_on_gate(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    """Deterministic: the kernel stack shows the exec parked in fanotify's permission wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if "fanotify" in Path(f"/proc/{proc.pid}/stack").read_text():
                return
        assert proc.poll() is None, "the exec finished without waiting on the gate"
        time.sleep(0.005)
    raise AssertionError("exec never reached the fanotify permission wait")


def _wait_until_stopped(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the gate never stopped itself"
        time.sleep(0.005)


def _finish(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_standalone_gate_killed_while_exec_waits_fails_open() -> None:
    """What the kernel does when the group closes: the reason the supervisor holds it."""
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        table = build_table(apps, gatekit.access(blocked=["org.example.Game"]), config, 1)
        gate = subprocess.Popen(
            [sys.executable, "-m", "agent.execgate.gate", "--mark", str(fs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert gate.stdin is not None and gate.stdout is not None
            gate.stdin.write(json.dumps({"table": table_to_json(table)}).encode() + b"\n")
            gate.stdin.flush()
            assert "ready" in json.loads(gate.stdout.readline())
            game = str(fs / "apps" / "game")
            assert _finish(_exec(game)) == 126
            os.kill(gate.pid, signal.SIGSTOP)
            proc = _exec(game)
            _wait_until_exec_waits_on_gate(proc)
            killed = time.monotonic()
            os.kill(gate.pid, signal.SIGKILL)
            rc = _finish(proc)
            released = time.monotonic() - killed
        finally:
            if gate.poll() is None:
                gate.kill()
            gate.wait()
    assert rc == 0, "the kernel lets a waiting exec through when the group closes"
    print(f"\nstandalone gate SIGKILLed: blocked app ran {released * 1000:.1f} ms later")


def test_supervised_gate_killed_while_exec_waits_denies_it_after_restart(env: Env) -> None:
    game = env.exe("game")
    assert _finish(_exec(game)) == 126
    gate_pid = env.sup.pid
    assert gate_pid is not None
    os.kill(gate_pid, signal.SIGSTOP)  # the gate stops reading: the next exec must wait
    proc = _exec(game)
    _wait_until_exec_waits_on_gate(proc)
    killed = time.monotonic()
    os.kill(gate_pid, signal.SIGKILL)
    rc = _finish(proc)
    waited = time.monotonic() - killed
    assert rc == 126, "the exec must wait for the new gate and be denied, not run"
    assert env.rec.ended.wait(OUTAGE_BOUND_S), "the gate was not back within the bound"
    start, end = env.rec.outages
    assert start.started and start.cause == "gate exited with -9"
    assert not end.started and end.seconds is not None and end.seconds < OUTAGE_BOUND_S
    assert not end.fail_open
    assert env.sup.pid != gate_pid and env.sup.restarts == 1
    assert _finish(_exec(env.exe("chess"))) == 0
    print(
        f"\nsupervised gate SIGKILLed: waiting exec denied {waited * 1000:.0f} ms later; "
        f"outage {end.seconds * 1000:.0f} ms; nothing ran unchecked"
    )


@pytest.mark.parametrize(("as_child", "expected"), [(True, 126), (False, 0)])
def test_events_read_by_a_dead_gate_are_answered_from_the_ledger(as_child, expected) -> None:
    gen = make_env(ping_timeout=600, gate_args=["--stop-after-first-read"])
    env = next(gen)
    try:
        gate_pid = env.sup.pid
        assert gate_pid is not None
        proc = _exec(env.exe("game"), as_child=as_child)  # read, recorded, then the gate stops
        _wait_until_stopped(gate_pid)
        _wait_until_exec_waits_on_gate(proc)
        os.kill(gate_pid, signal.SIGKILL)
        assert _finish(proc) == expected
        assert env.rec.ended.wait(OUTAGE_BOUND_S)
        assert [allowed for _, allowed in env.sup.recovered] == [expected == 0]
        assert _finish(_exec(env.exe("game"))) == 126  # the new gate enforces
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def test_hung_gate_is_killed_by_the_watchdog_and_replaced() -> None:
    with _env(ping_timeout=1.0) as env:
        gate_pid = env.sup.pid
        assert gate_pid is not None
        os.kill(gate_pid, signal.SIGSTOP)
        proc = _exec(env.exe("game"))
        _wait_until_exec_waits_on_gate(proc)
        stalled = time.monotonic()
        rc = _finish(proc)  # answered when the watchdog has replaced the hung gate
        frozen = time.monotonic() - stalled
        assert rc == 126
        assert env.rec.ended.wait(OUTAGE_BOUND_S)
        assert env.rec.outages[0].cause == "gate exited with -9"
        print(f"\nhung gate: exec waited {frozen:.2f} s (ping_timeout 1.0 s), then denied")


def test_a_hung_gate_is_killed_even_while_a_policy_update_blocks_on_its_full_pipe() -> None:
    """A hung gate stops reading its stdin too: an update then blocks writing tables into
    the full pipe, holding the supervisor's lock. The watchdog must not wait on that lock
    or pipe past its timeout (it pinged under the same lock): it kills the gate, which
    ends the blocked write, and the waiting exec is answered by the new gate."""
    with _env(ping_timeout=1.0) as env:
        gate_pid = env.sup.pid
        assert gate_pid is not None
        os.kill(gate_pid, signal.SIGSTOP)
        table = build_table(env.apps, gatekit.access(blocked=["org.example.Game"]), env.config, 2)
        updating = threading.Thread(target=lambda: [env.sup.update(table) for _ in range(2000)], daemon=True)
        updating.start()  # ~2 KB a table: the 64 KiB pipe is full after a few dozen
        proc = _exec(env.exe("game"))
        _wait_until_exec_waits_on_gate(proc)
        assert _finish(proc) == 126, "the exec was not answered after the hung gate"
        assert env.rec.ended.wait(OUTAGE_BOUND_S), "the hung gate was never replaced"
        updating.join(OUTAGE_BOUND_S)
        assert not updating.is_alive(), "the policy update stayed blocked on the dead gate's pipe"


def test_supervised_gate_takes_policy_updates_and_reports_blocks(env: Env) -> None:
    chess = env.exe("chess")
    assert _finish(_exec(chess)) == 0
    env.sup.update(build_table(env.apps, gatekit.access(blocked=["org.example.Chess"]), env.config, 2))
    deadline = time.monotonic() + 10
    while _finish(_exec(chess)) != 126:
        assert time.monotonic() < deadline, "the new table never reached the gate"
    for _ in range(3):
        assert _finish(_exec(chess)) == 126
    deadline = time.monotonic() + 10
    while not env.rec.blocked:
        assert time.monotonic() < deadline, "no blocked report from the gate process"
        time.sleep(0.01)
    assert [(b.app_id, b.reason) for b in env.rec.blocked] == [("org.example.Chess", "blocked")]


def test_a_gate_that_never_gets_ready_is_killed_and_nothing_freezes(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        table = build_table(apps, gatekit.access(blocked=["org.example.Game"]), config, 1)
        sup = GateSupervisor([str(fs)], table, python=str(fake), ready_timeout=0.5)
        began = time.monotonic()
        with pytest.raises(GateStartError, match=r"did not get ready within 0\.5 s"):
            sup.start()
        assert time.monotonic() - began < 5
        assert sup._proc is not None and sup._proc.returncode == -signal.SIGKILL
        # The group was released: execs are not left waiting on a gate that never came.
        assert _finish(_exec(str(fs / "apps" / "game")), timeout=10) == 0


def test_repeated_failed_restarts_release_the_group_then_recover(tmp_path: Path) -> None:
    """The device must not freeze if the gate cannot come back: while starts fail the
    supervisor's bridge answers; after `max_failures` failed starts the group is released
    (the session stays locked), and a later successful start enforces again with fail_open
    reported."""
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        table = build_table(apps, gatekit.access(blocked=["org.example.Game"]), config, 1)
        rec = Recorder()
        sup = GateSupervisor([str(fs)], table, None, rec.outage, max_failures=2, ping_timeout=600)
        sup.start()  # a real gate: its start may take seconds on a loaded machine
        try:
            game = str(fs / "apps" / "game")
            assert _finish(_exec(game)) == 126
            sup.python = str(fake)  # every restart from now on hangs before "ready"
            sup.ready_timeout = 0.5  # ... and is given up after 0.5 s
            gate_pid = sup.pid
            assert gate_pid is not None
            os.kill(gate_pid, signal.SIGKILL)
            waiting = _exec(game)
            # While restarts fail, the supervisor's bridge answers with the same verdicts:
            # the exec neither freezes nor slips through.
            assert _finish(waiting, timeout=30) == 126, "answered by the bridge, not frozen"
            deadline = time.monotonic() + 30
            while sup._fan_fd is not None and time.monotonic() < deadline:  # released?
                time.sleep(0.05)
            assert sup._fan_fd is None, "the group was not released after repeated failures"
            assert _finish(_exec(game)) == 0  # released: fail-open, the session stays locked
            sup.python = sys.executable
            sup.ready_timeout = 30.0  # the real gate again
            assert rec.ended.wait(OUTAGE_BOUND_S)
            start, end = rec.outages
            assert start.started and not end.started and end.fail_open
            assert sup.restarts >= 3
            assert _finish(_exec(game)) == 126
        finally:
            sup.stop()


def test_gate_starts_and_restarts_when_its_own_interpreter_is_on_the_marked_fs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On the device "/" is marked, so exec'ing the gate's own interpreter raises an event on
    the very group the gate will read: without the supervisor's bridge the gate waits for
    itself and every exec on the system freezes (seen in the QEMU image). Here the
    interpreter is copied onto the marked tmpfs to reproduce that without touching "/"."""
    import site

    monkeypatch.setenv("PYTHONHOME", sys.base_prefix)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parents[3]),
                                                     site.getsitepackages()[0]]))
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        python = fs / "interp" / "python3"
        python.parent.mkdir()
        python.write_bytes(Path(os.path.realpath(sys.executable)).read_bytes())
        python.chmod(0o700)
        access = gatekit.access(allowed=["org.example.Chess"], blocked=["org.example.Game"])
        rec = Recorder()
        sup = GateSupervisor([str(fs)], build_table(apps, access, config, 1), rec.blocked.append,
                             rec.outage, ping_interval=0.1, ping_timeout=600, python=str(python),
                             ready_timeout=20)
        sup.start()
        try:
            assert _exec(str(fs / "apps" / "game")).wait(20) == 126
            assert _exec(str(fs / "apps" / "chess")).wait(20) == 0
            first = sup.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while sup.pid in (None, first) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sup.pid not in (None, first), "the gate was not restarted"
            assert _exec(str(fs / "apps" / "game")).wait(20) == 126
            assert _exec(str(fs / "apps" / "chess")).wait(20) == 0
        finally:
            sup.stop()


_VFORK_PROBE = """
import subprocess, sys
sys.path.insert(0, sys.argv[2])
import gatekit
from agent.execgate.loop import ExecGate
from agent.execgate.table import GateConfig, build_table
print(subprocess._USE_VFORK, subprocess._USE_POSIX_SPAWN)
gate = ExecGate([sys.argv[1]], build_table({}, gatekit.access(), GateConfig(), 1))
gate.start()
print(subprocess._USE_VFORK, subprocess._USE_POSIX_SPAWN)
gate.stop()
"""


def test_a_process_that_answers_exec_events_never_spawns_with_vfork() -> None:
    """Bookworm's Python (3.11.2) holds the GIL while a vfork'ed child execs (cpython
    gh-104372, fixed in 3.11.6, so this host's Python cannot show the hang itself): if the
    same process answers that exec's event, it waits for itself. Seen in the QEMU guest
    with "/" marked. A gate thread or bridge must switch subprocess to fork()."""
    with gatekit.private_tmpfs() as fs:
        out = subprocess.run([sys.executable, "-c", _VFORK_PROBE, str(fs), str(Path(__file__).parent)],
                             capture_output=True,
                             text=True, timeout=60, cwd=Path(__file__).parents[3], check=True)
    before, after = out.stdout.splitlines()
    assert before == "True True", "this Python would not use vfork anyway: the probe proves nothing"
    assert after == "False False"
