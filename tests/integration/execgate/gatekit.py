"""Test kit for the exec gate: private tmpfs mounts, fake apps, and running as the child.

Every mount is made here, marked by nothing but the gate under test, and unmounted in
teardown (lazily if a process still holds it), even when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.core.decision import AppAccess
from agent.core.policy import AppDefault, AppRules
from agent.execgate.catalogue import AppInfo, scan
from agent.execgate.elf import interp_segment
from agent.execgate.table import GateConfig

CHILD_UID = 65534  # nobody: the child's stand-in (no test users are created)
ROOT = Path(__file__).parents[3]


@contextmanager
def private_tmpfs(options: str = "mode=755,size=64m") -> Iterator[Path]:
    """A tmpfs mounted on a fresh world-traversable directory; always unmounted."""
    from support.tmpfs import mounted_tmpfs

    with mounted_tmpfs(options, prefix="mm-gate-") as where:
        yield where


def make_binary(path: Path, source: str = "/bin/true", tag: str = "") -> Path:
    """A copy of a tiny program; `tag` appended after the ELF image makes its hash unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    if tag:
        with path.open("ab") as f:
            f.write(b"\0minormode-test:" + tag.encode())
    path.chmod(0o755)
    return path


def make_dynamic(path: Path, loader: Path, source: str = "/bin/true", tag: str = "") -> Path:
    """A copy of a dynamic program whose PT_INTERP names `loader` (a loader copied onto
    the test's tmpfs, so the kernel's open of it is an event the gate under test sees)."""
    make_binary(path, source, tag)
    fd = os.open(path, os.O_RDWR)
    try:
        where = interp_segment(fd)
        assert where is not None, f"{source} is not a dynamic program"
        offset, size = where
        name = os.fsencode(loader)
        if len(name) >= size:
            pytest.skip(f"the test's tmpfs path {loader} is longer than {source}'s PT_INTERP")
        os.pwrite(fd, name.ljust(size, b"\0"), offset)
    finally:
        os.close(fd)
    return path


def write_desktop(directory: Path, app_id: str, name: str, exe: Path, categories: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{app_id}.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName={name}\nExec={exe} %U\nCategories={categories}\n"
    )


def access(
    *,
    allowed: Sequence[str] = (),
    blocked: Sequence[str] = (),
    always: Sequence[str] = (),
    limits_spent: Sequence[str] = (),
    default: AppDefault = AppDefault.DENY,
    device_locked: bool = False,
) -> AppAccess:
    rules = AppRules(
        default=default,
        allowed=frozenset(allowed),
        allowed_categories=frozenset(),
        blocked=frozenset(blocked),
        blocked_categories=frozenset(),
        always_allowed=frozenset(always),
        always_allowed_categories=frozenset(),
        education_categories=frozenset(),
        limits_minutes={},
        categories={},
        payers=frozenset(),
    )
    return AppAccess(
        rules=rules,
        device_locked=device_locked,
        education_only=False,
        games_open=True,
        limits_spent=frozenset(limits_spent),
        game_categories=frozenset(),
    )


def as_child(argv: Sequence[str], timeout: float = 20, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run argv as the child's uid (no extra groups), capturing output."""
    return subprocess.run(
        list(argv),
        user=CHILD_UID,
        group=CHILD_UID,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
        **kw,  # type: ignore[arg-type]
    )


def exec_status(path: Path, *args: str, as_child: bool = True) -> int:
    """Exit status of an exec through a shell, as the child or as root (126: the gate
    refused it; the shell's own exec is what the gate sees, as for an app launcher)."""
    ids = {"user": CHILD_UID, "group": CHILD_UID, "extra_groups": []} if as_child else {}
    return subprocess.run(["sh", "-c", 'exec "$0" "$@"', str(path), *args], cwd="/", timeout=20,
                          stderr=subprocess.DEVNULL, check=False,
                          **ids).returncode  # type: ignore[call-overload]


@contextmanager
def running_agent(tmp_path: Path, *options: str, stdout_to_log: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """The real daemon (`python -m agent.daemon OPTIONS`) from the repository root, its
    output in tmp_path/agent.log; yields once it said READY=1 on a notify socket of the
    test's own, and stops it by its PID (SIGTERM, then SIGKILL) however the test ends."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    with (tmp_path / "agent.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agent.daemon", *options], env=env, stderr=log,
                                stdout=log if stdout_to_log else None, cwd=ROOT)
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            notify.close()


def as_root(argv: Sequence[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, cwd="/")


def need_root_reason() -> str:
    return "needs root: mounts a tmpfs and puts a fanotify mark on it"


def is_root() -> bool:
    return os.geteuid() == 0


def layout(fs: Path) -> tuple[dict[str, AppInfo], GateConfig]:
    """Three apps (distinct binaries), a base helper, a child-writable home, a shared dir."""
    apps_dir = fs / "apps"
    make_binary(apps_dir / "game", tag="game")
    make_binary(apps_dir / "chess", tag="chess")
    make_binary(apps_dir / "phone", tag="phone")
    make_binary(fs / "base" / "helper", tag="helper")
    for d, mode in (("home", 0o777), ("shared", 0o1777), ("opt", 0o755)):
        (fs / d).mkdir(mode=mode)
        (fs / d).chmod(mode)
    desktop = fs / "share" / "applications"
    write_desktop(desktop, "org.example.Game", "Game", apps_dir / "game", "Game;")
    write_desktop(desktop, "org.example.Chess", "Chess", apps_dir / "chess", "Education;")
    write_desktop(desktop, "org.example.Phone", "Phone", apps_dir / "phone", "Telephony;")
    result = scan([str(desktop)])
    assert not result.errors, result.errors
    config = GateConfig(
        also_restricted=frozenset({CHILD_UID}),
        base_prefixes=(f"{fs}/base/",),
        child_writable=(f"{fs}/home/", f"{fs}/tmp/"),
        hash_deadline=1.0,
    )
    return result.apps, config
