"""The dynamic loader run as a program (`ld-linux.so /path/to/blocked`) maps the blocked
program itself, with no exec of it for the gate to judge. The loader therefore runs for
the child only as a dynamic program's second step (its PT_INTERP, opened in the same
execve after the program's own open-for-exec notification); run as a program it is
refused, whatever it is given. The loader and the apps are copies on the test's tmpfs
(the apps' PT_INTERP points at that copy), so every open the kernel makes is an event of
the gate under test."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gatekit
import pytest

from agent.execgate import fanotify
from agent.execgate.loop import Blocked, ExecGate
from agent.execgate.supervisor import GateSupervisor
from agent.execgate.table import GateReason, GateTable, build_table, loader_paths

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]


@dataclass
class LoaderEnv:
    fs: Path
    loader: Path
    gate: ExecGate
    blocked: list[Blocked]


def _layout(fs: Path) -> tuple[Path, GateTable]:
    """A loader copy, two dynamic apps that name it (Game blocked, Chess allowed), and an
    unknown program, all on the test's tmpfs."""
    loader = fs / "l"
    shutil.copyfile(loader_paths()[0], loader)
    loader.chmod(0o755)
    for name in ("game", "chess"):
        gatekit.make_dynamic(fs / "apps" / name, loader, tag=name)
    gatekit.make_binary(fs / "opt" / "stranger", tag="stranger")
    desktop = fs / "share" / "applications"
    gatekit.write_desktop(desktop, "org.example.Game", "Game", fs / "apps" / "game", "Game;")
    gatekit.write_desktop(desktop, "org.example.Chess", "Chess", fs / "apps" / "chess", "Education;")
    apps = gatekit.scan([str(desktop)]).apps
    config = gatekit.GateConfig(also_restricted=frozenset({gatekit.CHILD_UID}), loaders=(str(loader),),
                                base_paths=(str(loader),))  # listed as base too: still judged
    access = gatekit.access(allowed=["org.example.Chess"], blocked=["org.example.Game"])
    return loader, build_table(apps, access, config, 1)


@pytest.fixture
def env() -> Iterator[LoaderEnv]:
    with gatekit.private_tmpfs() as fs:
        loader, table = _layout(fs)
        blocked: list[Blocked] = []
        gate = ExecGate([str(fs)], table, on_blocked=blocked.append)
        gate.start()
        try:
            yield LoaderEnv(fs, loader, gate, blocked)
        finally:
            gate.stop()


def _run(argv: list[str], as_child: bool = True) -> int:
    wrapped = ["sh", "-c", 'exec "$0" "$@"', *argv]  # sh is on "/": not this gate's
    result = gatekit.as_child(wrapped) if as_child else gatekit.as_root(wrapped)
    return result.returncode


def test_an_allowed_dynamic_program_gets_its_loader_every_time(env: LoaderEnv) -> None:
    chess = str(env.fs / "apps" / "chess")
    for _ in range(3):  # the first exec is judged, the next ones are cached: same outcome
        assert _run([chess]) == 0
    assert env.gate.stats.cached >= 1, "the program was never cached: the cached path is untested"
    assert _run([str(env.fs / "apps" / "game")]) == 126, "the blocked game ran"


@pytest.mark.parametrize("target", ["apps/game", "apps/chess", "opt/stranger", "/bin/true"])
def test_the_loader_run_as_a_program_is_refused_to_the_child(env: LoaderEnv, target: str) -> None:
    """Whatever it would map (a blocked app, an allowed one, an unknown program, a
    program from the unmarked root filesystem), the child's loader run fails."""
    program = target if target.startswith("/") else str(env.fs / target)
    assert _run([str(env.loader), program]) == 126
    assert _run([str(env.loader), "--list", program]) == 126
    deadline = time.monotonic() + 5
    while not any(b.reason == GateReason.LOADER_RUN.value for b in env.blocked):
        assert time.monotonic() < deadline, env.blocked


def test_root_may_run_the_loader_as_a_program(env: LoaderEnv) -> None:
    assert _run([str(env.loader), str(env.fs / "apps" / "game")], as_child=False) == 0


STATIC = "/sbin/ldconfig"  # glibc's ldconfig is static on Debian

FEXECVE = """
import os, sys
data = open(sys.argv[1], "rb").read()
fd = os.memfd_create("prog", 0)
os.write(fd, data)
try:
    os.execve(fd, ["prog", "--version"], {})
except PermissionError:
    sys.exit(77)
"""


def test_a_dynamic_program_on_a_file_system_the_gate_does_not_mark_gets_no_loader(env: LoaderEnv) -> None:
    """A file system the gate does not mark (here one outside its marks; on the device a
    tmpfs in a user namespace the child made, which the gate's mount namespace never
    sees: mounts in its own namespace are marked, test_late_mounts.py) raises no event;
    but a dynamic program there needs the loader, whose open is the gate's, with no
    program notification before it: refused. A static program there still runs: that
    residual is closed by keeping the child from mounting (README.md, "Late mounts and memfd")."""
    with gatekit.private_tmpfs() as late:
        dynamic = gatekit.make_dynamic(late / "game", env.loader, tag="late")
        static = gatekit.make_binary(late / "static", source=STATIC)
        assert _run([str(dynamic)]) == 126
        assert _run([str(dynamic)], as_child=False) == 0, "root was blocked"
        assert _run([str(static), "--version"]) == 0, "the static residual changed: update README.md"


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_a_dynamic_program_in_a_memfd_gets_no_loader(env: LoaderEnv, tmp_path: Path) -> None:
    """fexecve of a memfd: the memfd's file system cannot be marked (fanotify refuses
    marks on kernel-internal mounts), but a dynamic program in it needs the loader: refused.
    A static one runs unless vm.memfd_noexec = 2 (Linux >= 6.3; the image's sysctl)."""
    if Path("/proc/sys/vm/memfd_noexec").exists() and Path("/proc/sys/vm/memfd_noexec").read_text().strip() != "0":
        pytest.skip("memfd exec is already off on this host")
    dynamic = gatekit.make_dynamic(env.fs / "opt" / "memfd-dynamic", env.loader, tag="memfd")
    run = lambda program: gatekit.as_child(["/usr/bin/python3", "-c", FEXECVE, str(program)]).returncode  # noqa: E731
    assert run(dynamic) == 77
    assert run(STATIC) == 0, "the static residual changed: update README.md"


def test_the_gate_process_judges_the_loader_the_same_way() -> None:
    """The supervised gate process (the device's) gets the loaders in its table's JSON."""
    with gatekit.private_tmpfs() as fs:
        loader, table = _layout(fs)
        sup = GateSupervisor([str(fs)], table)
        sup.start()
        try:
            assert _run([str(fs / "apps" / "chess")]) == 0
            assert _run([str(fs / "apps" / "chess")]) == 0
            assert _run([str(loader), str(fs / "apps" / "game")]) == 126
            assert _run([str(loader), str(fs / "apps" / "game")], as_child=False) == 0
        finally:
            sup.stop()


def test_fanotify_cannot_mark_the_mount_that_holds_memfds() -> None:
    """Why the gate cannot judge a memfd's exec itself (the kernel refuses file system and
    mount marks on its internal mounts): if this starts passing, mark it and test that."""
    group = fanotify.init(fanotify.FAN_CLASS_CONTENT | fanotify.FAN_CLOEXEC)
    memfd = os.memfd_create("probe", os.MFD_CLOEXEC)
    try:
        for kind in (fanotify.FAN_MARK_FILESYSTEM, fanotify.FAN_MARK_MOUNT):
            with pytest.raises(OSError) as refused:
                fanotify.mark(group, fanotify.FAN_MARK_ADD | kind, fanotify.FAN_OPEN_EXEC_PERM, None, memfd)
            assert refused.value.errno == errno.EINVAL
    finally:
        os.close(memfd)
        os.close(group)
