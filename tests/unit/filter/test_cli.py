"""`minormodectl lists compile|info` through the module's own register()."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main


def test_compile_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "video.txt").write_text("tube.test\nbad..line\n")
    out = tmp_path / "out"
    assert main(["lists", "compile", "--src", str(src), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "compiled 1 names" in captured.out
    assert "video: 1 names compiled" in captured.err and "video.txt:2" in captured.err
    assert main(["lists", "info", "--out", str(out)]) == 0
    assert "video" in capsys.readouterr().out


def test_bad_source_is_an_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "video.txt").write_text("bad..line\n")
    out = tmp_path / "out"
    assert main(["lists", "compile", "--src", str(src), "--out", str(out), "--strict"]) == 1
    assert "video.txt:1" in capsys.readouterr().err
    assert not out.exists()
    assert main(["lists", "compile", "--src", str(tmp_path / "nope"), "--out", str(out)]) == 1
