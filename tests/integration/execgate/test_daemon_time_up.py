"""The real daemon end to end (development mode: a simulated clock at 60x, a simulated
child keeping the session active, the real session layer and exec gate on a tmpfs of the
test's own): a per-app limit reaches the OS stop (the running game gets SIGTERM and is
refused at exec from then on); when the day's budget is spent the session enters the
limited mode: the call app still starts, an ordinary allowed app does not."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import gatekit
import pytest

_exec = gatekit.exec_status

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]

POLICY = """version = 1
age_band = "12-16"
timezone = "Asia/Shanghai"
waive = ["windows", "curfew", "school", "rest", "games"]
[budget]
every_day = 3
[apps]
default = "allow"
[apps.limits]
"org.example.Game" = 1
"""


def _within(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def test_a_per_app_limit_stops_the_game_and_time_up_keeps_calls(tmp_path: Path) -> None:
    with gatekit.private_tmpfs() as fs:
        desktop = fs / "share" / "applications"
        game = gatekit.make_binary(fs / "apps" / "game", source="/bin/sleep", tag="game")
        calls = gatekit.make_binary(fs / "apps" / "calls", tag="calls")
        paint = gatekit.make_binary(fs / "apps" / "paint", tag="paint")
        gatekit.write_desktop(desktop, "org.example.Game", "Game", game, "Game;")
        gatekit.write_desktop(desktop, "org.example.Calls", "Calls", calls, "Telephony;")
        gatekit.write_desktop(desktop, "org.example.Paint", "Paint", paint, "Graphics;")
        policy = tmp_path / "policy.toml"
        policy.write_text(POLICY)
        with gatekit.running_agent(
                tmp_path, "--dev", "--speed", "60", "--start", "2026-11-23T10:00:00+08:00", "--policy", str(policy),
                "--state", str(tmp_path / "state"), "--child-uid", str(gatekit.CHILD_UID),
                "--exec-gate-mark", str(fs), "--desktop-dir", str(desktop), stdout_to_log=True):
            playing = subprocess.Popen([str(game), "600"], user=gatekit.CHILD_UID, group=gatekit.CHILD_UID,
                                       extra_groups=[], cwd="/")
            try:
                # One simulated minute of the game is one real second; then the OS stop.
                assert playing.wait(timeout=30) == -signal.SIGTERM, "the game's limit did not stop it"
                assert _exec(game, "0") == 126, "the game started again after its limit"
                assert _exec(paint) == 0 and _exec(calls) == 0  # the day's budget is not spent yet
                _within(lambda: _exec(paint) == 126, 30, "the budget never ran out")
                assert _exec(calls) == 0, "the call app was refused after time was up"
                log_text = (tmp_path / "agent.log").read_text()
                assert "limited mode: budget_spent" in log_text
            finally:
                if playing.poll() is None:
                    playing.kill()
                    playing.wait()
