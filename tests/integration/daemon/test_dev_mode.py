"""scripts/run-dev (agent.dev.run) as a developer runs it: each run on a fresh state unless
--keep-state, --start honoured, the export line that points minormodectl at the agent, the
simulated clock shown every simulated hour of a lock, and Ctrl-C (SIGINT to the whole
process group, as a terminal sends it) a clean stop."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.dev.run import MARKER

ROOT = Path(__file__).parents[3]
DECISION = re.compile(r"minormode\.agent: (\w{3}) (\d{2}):(\d{2})  (LOCKED|unlocked|still locked|in use)")


class RunDev:
    def __init__(self, tmp: Path, state: Path, *args: str) -> None:
        name = f"run-dev-{time.monotonic_ns()}"
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent.dev.run", "--state", str(state), *args],
                                         stdout=out, stderr=err, cwd=ROOT, start_new_session=True)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.err.read_text() + self.out.read_text())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never came:\n{self.err.read_text()}\n{self.out.read_text()}")

    def first_decision(self) -> tuple[str, int]:
        found = self.wait_for(DECISION.pattern)
        return found[1], int(found[2]) * 60 + int(found[3])

    def ctrl_c(self) -> int:
        """What a terminal's Ctrl-C does: SIGINT to every process of the foreground group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[RunDev]]:
    started: list[RunDev] = []
    try:
        yield started
    finally:
        for run in started:
            run.kill()


def test_a_second_run_starts_afresh_at_its_own_start(tmp_path: Path, runs: list[RunDev]) -> None:
    state = tmp_path / "state"
    first = RunDev(tmp_path, state, "--speed", "600", "--start", "2026-11-27T19:00+08:00")
    runs.append(first)
    day, minute = first.first_decision()
    assert day == "Fri" and 19 * 60 <= minute < 22 * 60
    first.wait_for(r"warning: 5 min left|LOCKED")  # the first run used the device
    assert first.ctrl_c() == 0
    assert "Traceback" not in first.err.read_text()
    # Earlier than the first run's simulated time: on the kept state that is the clock going back.
    second = RunDev(tmp_path, state, "--speed", "600", "--start", "2026-11-23T07:00+08:00")
    runs.append(second)
    day, minute = second.first_decision()
    assert day == "Mon" and 7 * 60 <= minute < 10 * 60, "--start was not honoured"
    second.wait_for(r"enforcing policy version 1")
    log = second.err.read_text()
    assert "clock: " not in log, "a tamper event from the first run's state"
    assert "used 0 min today" in log or "until the lock" in log
    assert (state / MARKER).is_file()
    assert second.ctrl_c() == 0


def test_keep_state_goes_on_where_the_last_run_stopped(tmp_path: Path, runs: list[RunDev]) -> None:
    state = tmp_path / "state"
    first = RunDev(tmp_path, state, "--speed", "600", "--start", "2026-11-27T19:00+08:00")
    runs.append(first)
    first.wait_for(r"Fri 19:\d\d  rest reminder|warning: 5 min left")
    assert first.ctrl_c() == 0
    second = RunDev(tmp_path, state, "--keep-state", "--speed", "600")
    runs.append(second)
    day, minute = second.first_decision()
    assert day == "Fri" and 19 * 60 + 30 <= minute < 23 * 60  # not the agent's default Mon 06:55
    second.wait_for(r"enforcing policy version 1")
    assert "clock: " not in second.err.read_text()
    assert second.ctrl_c() == 0


def test_the_export_line_points_minormodectl_at_the_agent(tmp_path: Path, runs: list[RunDev]) -> None:
    run = RunDev(tmp_path, tmp_path / "state", "--speed", "60")
    runs.append(run)
    line = run.wait_for(r"(?m)^export DBUS_SYSTEM_BUS_ADDRESS=(\S+)")
    address = shlex.split(line[1])[0]
    run.wait_for(r"enforcing policy version 1")
    status = subprocess.run([sys.executable, "-m", "agent.cli", "status"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=False,
                            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address})
    assert status.returncode == 0, status.stderr
    assert "minor mode: on, age band 8-12, policy version 1" in status.stdout
    assert run.ctrl_c() == 0


def test_a_night_locked_shows_the_clock_every_simulated_hour(tmp_path: Path, runs: list[RunDev]) -> None:
    run = RunDev(tmp_path, tmp_path / "state", "--speed", "3600", "--start", "2026-11-27T22:10+08:00")
    runs.append(run)
    run.wait_for(r"Sat 04:0\d  still locked")
    hours = {(m[1], int(m[2])) for m in DECISION.finditer(run.err.read_text()) if "locked" in m[4].lower()}
    for hour in [("Fri", 23), ("Sat", 0), ("Sat", 1), ("Sat", 2), ("Sat", 3), ("Sat", 4)]:
        assert hour in hours, f"no line in simulated hour {hour} of the night's lock"
    assert run.ctrl_c() == 0


def test_a_state_directory_it_did_not_make_is_never_emptied(tmp_path: Path) -> None:
    state = tmp_path / "mine"
    state.mkdir()
    (state / "keep.txt").write_text("precious")
    proc = subprocess.run([sys.executable, "-m", "agent.dev.run", "--state", str(state)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 2 and f"--state {state}: not a development state directory" in proc.stderr
    assert (state / "keep.txt").read_text() == "precious"
