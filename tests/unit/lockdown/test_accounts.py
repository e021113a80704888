"""The child's uids as `minormodectl lockdown check` reads them from a root: `child_uid` in
etc/minormode/agent.conf and its agent.conf.d drop-ins, layered as the agent layers them;
settings the agent would refuse count as none (the agent would not start: fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.lockdown.accounts import configured_child_uids
from agent.lockdown.rootdir import RootDir


def root_with(tmp_path: Path, main: str | None, **dropins: str) -> RootDir:
    etc = tmp_path / "etc/minormode"
    etc.mkdir(parents=True)
    if main is not None:
        (etc / "agent.conf").write_text(main)
    if dropins:
        (etc / "agent.conf.d").mkdir()
    for name, text in dropins.items():
        (etc / "agent.conf.d" / name).write_text(text)
    return RootDir(tmp_path)


def test_a_later_drop_in_wins(tmp_path: Path) -> None:
    view = root_with(tmp_path, "child_uid = [1000]\n",
                     **{"10-image.conf": "child_uid = [1001]\n", "50-local.conf": "child_uid = [1002, 1003]\n"})
    assert configured_child_uids(view) == (1002, 1003)


def test_the_main_file_alone(tmp_path: Path) -> None:
    assert configured_child_uids(root_with(tmp_path, "child_uid = [1005]\n")) == (1005,)


@pytest.mark.parametrize(("main", "dropin"), [
    (None, ""),  # no settings at all: the agent's default
    ("child_uid = [1000]\n", "child_uid = = 1\n"),  # a drop-in that is not TOML
    ("child_uid = [1000]\n", 'child_uid = "1000"\n'),  # a wrong type
])
def test_settings_the_agent_would_refuse_name_no_uid(tmp_path: Path, main: str | None, dropin: str) -> None:
    view = root_with(tmp_path, main, **({"10-image.conf": dropin} if dropin else {}))
    assert configured_child_uids(view) == ()
