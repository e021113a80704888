"""The child's OS base holds nothing that runs code it is handed, makes namespaces or
mounts, or gains privileges: checked on the image's own list and on real programs."""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from agent.execgate.base import SESSION_LAUNCHERS, base_problems, kind_of
from agent.execgate.table import loader_paths

ROOT = Path(__file__).parents[3]


def image_base() -> list[str]:
    """The exec_gate_base paths of the image's agent settings (its drop-in 10-image.conf)."""
    path = ROOT / "image-build" / "agent.conf.d" / "10-image.conf"
    base = tomllib.loads(path.read_text()).get("exec_gate_base")
    assert isinstance(base, list), f"{path} sets no exec_gate_base"
    return [str(p) for p in base]


def test_the_images_base_is_the_session_and_nothing_that_runs_code_it_is_handed() -> None:
    base = image_base()
    assert base == [
        "/usr/lib/systemd/systemd",  # the user manager (user@.service)
        "/usr/bin/dbus-daemon",  # the session bus
        "/opt/minormode/venv/bin/minormode-session-helper",  # a script: python3 is its step only
    ], "the image's base changed: check each new entry here"
    assert [p for p in base if kind_of(p) is not None] == []
    assert {os.path.basename(p) for p in base} - {"minormode-session-helper"} <= SESSION_LAUNCHERS
    present = [p for p in base if os.path.exists(p)]  # this host has the system ones
    assert base_problems(present) == []


def _which(name: str) -> str:
    found = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    if found is None:
        pytest.skip(f"{name} is not installed here")
    return found


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("sh", "a shell"),
        ("bash", "a shell"),
        ("env", "a launcher"),
        ("systemd-run", "a launcher"),
        ("python3", "an interpreter"),
        ("perl", "an interpreter"),
        ("unshare", "creates namespaces"),
        ("nsenter", "creates namespaces"),
        ("mount", "mounts file systems"),
        ("su", "a launcher"),
    ],
)
def test_programs_that_run_code_or_make_namespaces_or_mounts_are_refused(name: str, why: str) -> None:
    [problem] = base_problems([_which(name)])
    assert why in problem


def test_a_privileged_program_or_a_disguised_shell_or_the_loader_is_refused(tmp_path: Path) -> None:
    suid = tmp_path / "helper"
    shutil.copyfile("/bin/true", suid)
    suid.chmod(0o4755)
    disguised = tmp_path / "session-helper"
    disguised.symlink_to(_which("bash"))
    loader = loader_paths()[0]
    problems = base_problems([str(suid), str(disguised), loader, str(tmp_path / "gone"), "/bin/true"])
    assert [p.split(": ", 1)[1] for p in problems] == [
        "set-uid or set-gid",
        "a shell (runs any command line)",
        "the dynamic loader (runs any program it is given; allowed only as a step)",
        "cannot be checked (No such file or directory)",
    ]


def test_a_copy_of_a_refused_program_under_another_name_is_refused(tmp_path: Path) -> None:
    bash = os.path.realpath(_which("bash"))
    copy = tmp_path / "session-helper"
    shutil.copyfile(bash, copy)
    copy.chmod(0o755)
    harmless = tmp_path / "true"
    shutil.copyfile("/bin/true", harmless)
    [problem] = base_problems([str(copy), str(harmless)])
    assert problem.startswith(f"{copy}: a copy of ") and problem.endswith("bash"), problem
