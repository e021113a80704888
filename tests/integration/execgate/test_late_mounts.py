"""File systems under a marked path get the gate's mark too, also those mounted after the
gate started (issue 16, item 2): logind's /run/user/UID at each login, a stick udisks
mounts, a FUSE mount through the set-uid fusermount. Before, only the configured paths'
own file systems were marked, and a static program on any other one ran for the child
with no event. The test's tmpfs stands for "/": the mounts below it are the late ones.

Each case has its control: root runs the same file from the same mount (so the mount is
exec-able and the refusal is the gate's), and the child runs an allowed app there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gatekit
import pytest

from agent.execgate.loop import Blocked
from agent.execgate.supervisor import GateSupervisor
from agent.execgate.table import build_table

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts tmpfs and marks them"),
]

STATIC = "/sbin/ldconfig"  # glibc's ldconfig is static on Debian: no loader step to refuse
MARK_WAIT_S = 10.0  # one poll wake-up and a mountinfo read; generous for a loaded machine


def _mount(where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755,size=16m", "tmpfs", str(where)], check=True)


def _umount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def fs() -> Iterator[Path]:
    with gatekit.private_tmpfs() as fs:
        yield fs


def _supervisor(fs: Path, blocked: list[Blocked], **kw: object) -> GateSupervisor:
    apps, config = gatekit.layout(fs)
    access = gatekit.access(allowed=["org.example.Chess"], blocked=["org.example.Game"])
    kw.setdefault("ping_timeout", 600)
    return GateSupervisor([str(fs)], build_table(apps, access, config, 1), blocked.append,
                          **kw)  # type: ignore[arg-type]


def test_a_static_program_on_a_file_system_mounted_later_is_refused_to_the_child(fs: Path) -> None:
    blocked: list[Blocked] = []
    sup = _supervisor(fs, blocked)
    sup.start()
    late = fs / "run" / "user" / "1000"
    try:
        assert sup.mounts is not None
        _mount(late)
        assert sup.mounts.wait_marked(str(late), MARK_WAIT_S), "the late mount was never marked"
        static = gatekit.make_binary(late / "static", source=STATIC)
        chess = gatekit.make_binary(late / "chess-copy", source=str(fs / "apps" / "chess"))
        assert gatekit.exec_status(static, "--version", as_child=False) == 0, "the mount is not exec-able"
        assert gatekit.exec_status(static, "--version") == 126, "the child ran a static program from a late mount"
        assert _wait_blocked(blocked, str(static)), "the gate did not report the refusal"
        # a copy of an allowed app is that app (by its hash), wherever it is mounted
        assert gatekit.exec_status(chess) == 0, "an allowed app's copy was refused on a late mount"
    finally:
        _umount(late)
        sup.stop()


def test_mounts_present_at_start_are_marked_and_unrelated_ones_are_not(fs: Path) -> None:
    """A file system already mounted under the root when the gate starts (the agent
    restarted while the child was logged in) is marked; one outside every root is not
    touched (the host's own mounts in this test; "/" on the device)."""
    early = fs / "early"
    _mount(early)
    blocked: list[Blocked] = []
    sup = _supervisor(fs, blocked)
    with gatekit.private_tmpfs() as outside:
        try:
            sup.start()
            assert sup.mounts is not None
            points = {m.mount_point for m in sup.mounts.marked.values()}
            assert str(early) in points and str(fs) in points
            assert all(p.startswith(str(fs)) for p in points), points
            static = gatekit.make_binary(early / "static", source=STATIC)
            assert gatekit.exec_status(static, "--version") == 126
            stray = gatekit.make_binary(outside / "static", source=STATIC)
            assert gatekit.exec_status(stray, "--version") == 0, "a mount outside the roots was judged"
        finally:
            sup.stop()
            _umount(early)


def test_without_following_a_late_mount_runs_its_static_program(fs: Path) -> None:
    """The control for the first test: the same supervisor with follow_mounts=False (what
    the device did before) lets the child run it. If this fails, the first test pins nothing."""
    blocked: list[Blocked] = []
    sup = _supervisor(fs, blocked, follow_mounts=False)
    sup.start()
    late = fs / "media" / "stick"
    try:
        _mount(late)
        static = gatekit.make_binary(late / "static", source=STATIC)
        assert gatekit.exec_status(static, "--version") == 0
    finally:
        _umount(late)
        sup.stop()


def test_a_fresh_group_marks_the_followed_mounts_again(fs: Path, tmp_path: Path) -> None:
    """After repeated failed starts the supervisor releases the group; the group it makes
    when a gate starts again must hold the late mounts too, not only the configured paths."""
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    blocked: list[Blocked] = []
    ended = threading.Event()
    sup = _supervisor(fs, blocked, max_failures=2, on_outage=lambda o: None if o.started else ended.set())
    sup.start()
    late = fs / "run" / "lock"
    try:
        assert sup.mounts is not None
        _mount(late)
        assert sup.mounts.wait_marked(str(late), MARK_WAIT_S)
        static = gatekit.make_binary(late / "static", source=STATIC)
        chess = gatekit.make_binary(late / "chess-copy", source=str(fs / "apps" / "chess"))
        sup.python, sup.ready_timeout = str(fake), 0.5  # restarts now hang before "ready"
        gate_pid = sup.pid
        assert gate_pid is not None
        os.kill(gate_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while sup._fan_fd is not None:  # released after two failed starts
            assert time.monotonic() < deadline, "the group was never released"
            time.sleep(0.05)
        sup.python, sup.ready_timeout = sys.executable, 30.0
        assert ended.wait(60), "no gate came back"
        assert gatekit.exec_status(static, "--version") == 126, "the new group lost the late mount"
        # Execs the new group allows are also asked of every other group marking the
        # file: a released group that lingered (the watchdog still asleep in poll() on
        # it) would hold them, unanswered, up to idle_check - the refusal above can miss
        # that, since a deny from the new group ends the kernel's walk over the groups.
        assert gatekit.exec_status(static, "--version", as_child=False) == 0, "root's exec was held"
        assert gatekit.exec_status(chess) == 0, "an allowed exec was held by the released group"
    finally:
        _umount(late)
        sup.stop()


def _wait_blocked(blocked: list[Blocked], path: str) -> bool:
    deadline = time.monotonic() + 5
    while not any(b.path == path for b in blocked):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
