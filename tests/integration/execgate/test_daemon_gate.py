"""The real agent process with the exec gate on a tmpfs of the test's own: the device's
OS base (--exec-gate-base) runs for the child, a base script with its interpreter too (but
not the interpreter alone), anything else no rule allows does not, root is never blocked,
and the agent comes up READY (it freezes if the gate waits on itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gatekit
import pytest

ROOT = gatekit.ROOT
run = gatekit.exec_status

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]


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
        with gatekit.running_agent(
                tmp_path, "--policy", str(policy), "--state", str(tmp_path / "state"), "--bus-address", "none",
                "--child-uid", str(gatekit.CHILD_UID), "--exec-gate-mark", str(fs), "--exec-gate-base",
                str(fs / "base")):
            assert run(helper) == 0, "the device's base did not run for the child"
            assert run(tool) == 126, "the child ran a program no rule allows"
            assert run(script) == 0, "a base script's interpreter was refused"
            assert run(interp) == 126, "the child called the interpreter itself"
            assert run(tool, as_child=False) == 0, "root was blocked"
        assert run(tool) == 0, "the gate outlived the agent"


def test_agent_with_a_shell_in_its_base_says_so_and_does_not_start(tmp_path: Path) -> None:
    """A manufacturer's `--exec-gate-base /bin/sh` would hand the child a shell: the agent
    refuses it as it refuses any bad setting (exit 2, the path and why, no traceback)."""
    with gatekit.private_tmpfs() as fs:
        policy = tmp_path / "policy.toml"
        policy.write_text((ROOT / "config" / "policies" / "8-12.toml").read_text())
        done = subprocess.run(
            [sys.executable, "-m", "agent.daemon", "--policy", str(policy), "--state",
             str(tmp_path / "state"), "--bus-address", "none", "--child-uid",
             str(gatekit.CHILD_UID), "--exec-gate-mark", str(fs), "--exec-gate-base", "/bin/sh"],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    shown = os.path.realpath("/bin/sh")  # the settings resolve base paths (the gate compares real ones)
    assert "not starting" in done.stderr and f"{shown}: a shell" in done.stderr
    assert "Traceback" not in done.stderr
