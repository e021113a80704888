"""`minormodectl apps` lists the catalogue; bad desktop files are reported, not fatal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agent.execgate import cli as apps_cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    apps_cli.register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_apps_lists_json_and_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "org.example.True.desktop").write_text(
        "[Desktop Entry]\nName=True\nExec=/bin/true\nCategories=Utility;\n"
    )
    (tmp_path / "bad.desktop").write_text("[Desktop Entry]\nExec=x\n")
    assert _run(["apps", "--dir", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [(r["app_id"], r["name"], r["categories"]) for r in rows] == [
        ("org.example.True", "True", ["Utility"])
    ]
    assert rows[0]["executables"] and len(rows[0]["sha256"]) == 1
    assert "bad.desktop" in err and "Name= is missing" in err
    assert _run(["apps", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("org.example.True\tTrue\tUtility\t")
