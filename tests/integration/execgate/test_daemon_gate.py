"""The real agent process with the exec gate on a tmpfs of the test's own: the device's
OS base (--exec-gate-base) runs for the child, a base script with its interpreter too (but
not the interpreter alone), anything else no rule allows does not, root is never blocked,
and the agent comes up READY (it freezes if the gate waits on itself)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import gatekit
import pytest

ROOT = Path(__file__).parents[3]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]


def _run(path: Path, as_child: bool) -> int:
    ids = {"user": gatekit.CHILD_UID, "group": gatekit.CHILD_UID, "extra_groups": []}
    return subprocess.run(["sh", "-c", 'exec "$0"', str(path)], cwd="/", timeout=20,
                          stderr=subprocess.DEVNULL, check=False,
                          **(ids if as_child else {})).returncode  # type: ignore[call-overload]


def test_agent_gates_execs_with_the_device_base(tmp_path: Path) -> None:
    with gatekit.private_tmpfs() as fs:
        helper = gatekit.make_binary(fs / "base" / "session-helper", tag="helper")
        tool = gatekit.make_binary(fs / "opt" / "tool", tag="tool")
        interp = gatekit.make_binary(fs / "interp" / "sh", source="/bin/sh", tag="interp")
        script = fs / "base" / "session-script"  # like the session helper, a script
        script.write_text(f"#!{interp}\nexit 0\n")
        script.chmod(0o755)
        policy = tmp_path / "policy.toml"
        policy.write_text((ROOT / "config" / "policies" / "8-12.toml").read_text())
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(60)
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
        with (tmp_path / "agent.log").open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent.daemon", "--policy", str(policy), "--state",
                 str(tmp_path / "state"), "--bus-address", "none", "--child-uid",
                 str(gatekit.CHILD_UID), "--exec-gate-mark", str(fs), "--exec-gate-base",
                 str(fs / "base")],
                env=env, stderr=log, cwd=ROOT)
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
            assert _run(helper, as_child=True) == 0, "the device's base did not run for the child"
            assert _run(tool, as_child=True) == 126, "the child ran a program no rule allows"
            assert _run(script, as_child=True) == 0, "a base script's interpreter was refused"
            assert _run(interp, as_child=True) == 126, "the child called the interpreter itself"
            assert _run(tool, as_child=False) == 0, "root was blocked"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                notify.close()
        assert _run(tool, as_child=True) == 0, "the gate outlived the agent"
