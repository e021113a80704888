"""config/lockdown/install.sh, what image-build runs: idempotent, and bad input exits 2
changing nothing. Needs root (groupadd --root chroots)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
INSTALL = REPO / "config" / "lockdown" / "install.sh"
pytestmark = pytest.mark.root


def install(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), *argv], capture_output=True, text=True, check=False)


def test_a_second_run_changes_nothing(passing_root: Path) -> None:
    before = {str(p.relative_to(passing_root)): (p.is_symlink(), p.read_bytes() if p.is_file() else b"")
              for p in sorted(passing_root.rglob("*")) if not p.name.endswith("-")}
    assert install(str(passing_root), "child").returncode == 0
    after = {str(p.relative_to(passing_root)): (p.is_symlink(), p.read_bytes() if p.is_file() else b"")
             for p in sorted(passing_root.rglob("*")) if not p.name.endswith("-")}
    assert after == before
    assert "minormode-child:x:999:child\n" in (passing_root / "etc/group").read_text()


@pytest.mark.parametrize(("argv", "named"), [
    ([], "usage:"),
    (["{root}"], "usage:"),
    (["{root}", "child", "nosuchchild"], "no account nosuchchild in"),
    (["{empty}", "child"], "no etc/ there, not a root file system"),
])
def test_bad_input_exits_2(passing_root: Path, tmp_path: Path, argv: list[str], named: str) -> None:
    (tmp_path / "empty").mkdir()
    (passing_root / "etc/systemd/system/getty@.service").unlink()  # so a partial run would show
    (passing_root / "etc/sysctl.d/60-minormode-lockdown.conf").unlink()
    before = sorted(str(p) for p in passing_root.rglob("*"))
    group = (passing_root / "etc/group").read_text()
    done = install(*(a.format(root=passing_root, empty=tmp_path / "empty") for a in argv))
    assert done.returncode == 2
    assert named in done.stderr
    assert sorted(str(p) for p in passing_root.rglob("*")) == before
    assert (passing_root / "etc/group").read_text() == group
