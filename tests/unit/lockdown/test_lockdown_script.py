"""systemd/libexec/minormode-lockdown, the unit that fails closed while the agent is down,
run with stand-ins for loginctl and systemctl first on PATH (they log what they are asked):
the sessions are locked at once; when the agent is not back within the grace, every
ordinary user's sessions are ended (never a system user's); when it is back, none are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "systemd/libexec/minormode-lockdown"


def run(tmp: Path, agent_active: bool) -> list[str]:
    bin_dir, log = tmp / "bin", tmp / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "loginctl").write_text(
        f'#!/bin/sh\necho "loginctl $*" >> {log}\n'
        '[ "$1" = "--no-legend" ] && printf "0 root\\n999 svc\\n1000 child\\n1001 sibling\\n"\nexit 0\n')
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "systemctl $*" >> {log}\nexit {0 if agent_active else 3}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", MINORMODE_LOCKDOWN_GRACE="1")
    done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_the_agent_still_down_ends_every_ordinary_users_sessions(tmp_path: Path) -> None:
    calls = run(tmp_path, agent_active=False)
    assert calls[0] == "loginctl lock-sessions"
    assert [c for c in calls if "terminate-user" in c] == ["loginctl terminate-user 1000",
                                                           "loginctl terminate-user 1001"]


def test_the_agent_back_within_the_grace_ends_nothing(tmp_path: Path) -> None:
    calls = run(tmp_path, agent_active=True)
    assert calls[0] == "loginctl lock-sessions"
    assert not [c for c in calls if "terminate-user" in c]
