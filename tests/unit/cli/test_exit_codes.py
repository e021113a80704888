"""minormodectl's exit codes, the same for every command: 0 ok, 1 check failed or refused,
2 bad input, 3 not permitted here or the agent not running (agent/cli/errors.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli.errors import Exit
from agent.cli.main import main
from agent.store.layout import StoreLayout

ROOT = Path(__file__).parents[3]
EXAMPLE = str(ROOT / "config" / "policies" / "8-12.toml")
NOBODY = 65534


def ctl(*argv: str, as_uid: int | None = None) -> subprocess.CompletedProcess[str]:
    prefix = [] if as_uid is None else ["setpriv", f"--reuid={as_uid}", f"--regid={as_uid}",
                                        "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, "-m", "agent.cli", *argv], capture_output=True,
                          text=True, cwd=ROOT, check=False)


def test_help_documents_the_exit_codes() -> None:
    done = ctl("--help")
    assert done.returncode == Exit.OK
    assert "exit status:" in done.stdout
    for code in Exit:
        assert f"\n  {code.value}  " in done.stdout, f"exit {code.value} not documented"


def test_ok_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", EXAMPLE]) == Exit.OK
    bad = tmp_path / "p.toml"
    bad.write_text("version = = 1\n")
    assert main(["check", str(bad)]) == Exit.BAD_INPUT
    assert str(bad) in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["explain", EXAMPLE])  # --at is required: argparse's own exit 2
    assert exit_.value.code == Exit.BAD_INPUT


def test_a_failed_check_is_1(tmp_path: Path) -> None:
    (tmp_path / "video.mmdl").write_bytes(b"not a list")
    assert main(["lists", "info", "--out", str(tmp_path)]) == Exit.FAILED


def test_the_agent_not_running_is_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--bus", f"unix:path={tmp_path}/no-bus"]) == Exit.UNAVAILABLE
    assert "cannot reach the agent's bus" in capsys.readouterr().err


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to run a command as another user")
def test_a_root_only_command_as_another_user_is_3(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    done = ctl("purchases", "list", "--state", str(tmp_path), as_uid=NOBODY)
    assert done.returncode == Exit.UNAVAILABLE, done.stderr
    assert "only root" in done.stderr
    state = tmp_path / "state"
    StoreLayout(state).open_journal(clock=lambda: datetime.now(UTC)).close()  # root's journal, in a 0700 directory
    done = ctl("journal", "verify", "--state", str(state), as_uid=NOBODY)
    assert done.returncode == Exit.UNAVAILABLE, done.stderr
    assert "Permission denied; run as root" in done.stderr
