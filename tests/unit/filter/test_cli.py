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
    assert main(["lists", "compile", "--src", str(src), "--out", str(out), "--partial"]) == 0
    captured = capsys.readouterr()
    assert "compiled 1 names" in captured.out
    assert "warning: no source list for adult, gambling," in captured.err
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
    assert main(["lists", "compile", "--src", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_categories_without_a_source_are_named_and_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "adult.txt").write_text("porn.test\n")
    (src / "gambling").mkdir()
    (src / "gambling" / "a.hosts").write_text("0.0.0.0 casino.test\n")
    out = tmp_path / "out"
    assert main(["lists", "compile", "--src", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert ("no source list for violence, drugs, self-harm, proxies-vpn-doh, games, social, "
            "video in") in err
    assert "adult" not in err.split("no source list for")[1]
    assert (out / "adult.mmdl").exists()  # the others are compiled all the same
    (src / "proxies-vpn-doh.txt").write_text("dns.google\n")
    for c in ("violence", "drugs", "self-harm", "games", "social", "video"):
        (src / f"{c}.txt").write_text(f"{c}.test\n")
    assert main(["lists", "compile", "--src", str(src), "--out", str(out)]) == 0
