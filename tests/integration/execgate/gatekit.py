"""Test kit for the exec gate: private tmpfs mounts, fake apps, and running as the child.

Every mount is made here, marked by nothing but the gate under test, and unmounted in
teardown (lazily if a process still holds it), even when the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agent.core.decision import AppAccess
from agent.core.policy import AppDefault, AppRules
from agent.execgate.catalogue import AppInfo, scan
from agent.execgate.table import GateConfig

CHILD_UID = 65534  # nobody: the child's stand-in (no test users are created)


@contextmanager
def private_tmpfs(options: str = "mode=755,size=64m") -> Iterator[Path]:
    """A tmpfs mounted on a fresh world-traversable directory; always unmounted."""
    where = Path(tempfile.mkdtemp(prefix="mm-gate-"))
    where.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def make_binary(path: Path, source: str = "/bin/true", tag: str = "") -> Path:
    """A copy of a tiny program; `tag` appended after the ELF image makes its hash unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    if tag:
        with path.open("ab") as f:
            f.write(b"\0minormode-test:" + tag.encode())
    path.chmod(0o755)
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
