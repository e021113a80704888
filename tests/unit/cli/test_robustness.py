"""minormodectl against bad input, a closed pipe and a missing state directory, as a person
or a script would meet them: every subcommand is in the table (a new one fails the first
test until it is), bad input is exit 2 naming the input with no traceback and nothing
created, a reader that leaves early (`| head`) ends quietly, read commands create nothing."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from agent.cli.errors import Exit
from agent.cli.main import build_parser, main

ROOT = Path(__file__).parents[3]
EXAMPLE = str(ROOT / "config" / "policies" / "8-12.toml")
M = "{missing}"  # a path under the test's directory that does not exist
ROOT_ONLY = ("purchases",)

# (the subcommand, argv with one bad input, what stderr must name)
BAD_INPUT: list[tuple[str, list[str], list[str]]] = [
    ("check", ["check", f"{M}/p.toml"], [f"{M}/p.toml", "No such file"]),
    ("explain", ["explain", EXAMPLE, "--at", "2026-11-31T10:00"], ["2026-11-31T10:00", "2026-11-23T18:30"]),
    ("explain", ["explain", f"{M}/p.toml", "--at", "2026-11-23T10:00"], [f"{M}/p.toml"]),
    ("explain", ["explain", EXAMPLE, "--at", "2026-11-23T10:00", "--used", "lots"], ["--used", "lots"]),
    ("simulate", ["simulate", EXAMPLE, "--day", "23/11/2026"], ["23/11/2026", "YYYY-MM-DD"]),
    ("simulate", ["simulate", EXAMPLE, "--from", "7am"], ["7am", "HH:MM"]),
    ("simulate", ["simulate", EXAMPLE, "--from", "20:00", "--to", "19:00"], ["--from 20:00 --to 19:00"]),
    ("simulate", ["simulate", EXAMPLE, "--from", "19:00", "--to", "19:00"], ["--from 19:00 --to 19:00"]),
    ("status", ["status", "--bus", "nonsense"], ["nonsense", "unix:path="]),
    ("ask-time", ["ask-time", "ten"], ["'ten'", "minutes"]),
    ("report", ["report", "boredom"], ["'boredom'", "choose from"]),
    ("code", ["code", "12345678", "--bus", "nonsense"], ["nonsense"]),
    ("grant", ["grant", "0"], ["0: at least 1 minute"]),
    ("load", ["load", f"{M}/p.toml"], [f"{M}/p.toml", "no such file"]),
    ("pair", ["pair", "--timeout", "soon"], ["'soon'"]),
    ("trust", ["trust", "--bus", "nonsense"], ["nonsense"]),
    ("sync status", ["sync", "status", "--bus", "nonsense"], ["nonsense"]),
    ("guardian-code", ["guardian-code", "--secret-file", f"{M}/secret"], [f"{M}/secret", "No such file"]),
    ("guardian-key new", ["guardian-key", "new", "--out", f"{M}/k.pem"], [f"{M}/k.pem", "no directory"]),
    ("journal verify", ["journal", "verify", "--state", M], [M, "no such directory"]),
    ("journal read", ["journal", "read", "--state", M, "--key", f"{M}/k"], [M, "no such directory"]),
    ("journal export", ["journal", "export", "--state", M, "--out", f"{M}/x"], [M, "no such directory"]),
    ("journal pair", ["journal", "pair", "--state", M, "--guardian", "zz"], ["--guardian", "zz"]),
    ("data list", ["data", "list", "--state", M], [M, "no such directory"]),
    ("data delete", ["data", "delete", "--state", M, "--yes"], [M, "no such directory"]),
    ("purchases list", ["purchases", "list", "--state", M], [M, "no such directory"]),
    ("purchases list", ["purchases", "list", "--status", "maybe"], ["'maybe'"]),
    ("purchases approve", ["purchases", "approve", "r1", "--state", M], [M, "no such directory"]),
    ("purchases deny", ["purchases", "deny", "r1", "--state", M], [M, "no such directory"]),
    ("lists compile", ["lists", "compile", "--src", M, "--out", f"{M}/out"], [M, "no such directory"]),
    ("lists compile", ["lists", "compile", "--category", "kittens"], ["'kittens'"]),
    ("lists info", ["lists", "info", "--out", M], [M, "no such directory"]),
    ("lists keygen", ["lists", "keygen", "--out", f"{M}/acme"], [f"{M}/acme", "no directory"]),
    ("lists sign", ["lists", "sign", "--key", f"{M}/k", "--src", M, "--version", "1", "--out", f"{M}/b"],
     [M, "no such directory"]),
    ("lists sign", ["lists", "sign", "--key", "k", "--src", ".", "--version", "one", "--out", "b"],
     ["'one'"]),
    ("lists verify", ["lists", "verify", M], [M, "no such directory"]),
    ("lists install", ["lists", "install", M, "--out", f"{M}/out"], [M, "no such directory"]),
    ("apps", ["apps", "--dir", M], [M, "no such directory"]),
    ("firstboot", ["firstboot", "--factory", f"{M}/factory.toml", "--state", M], [f"{M}/factory.toml"]),
    ("lockdown check", ["lockdown", "check", "--root", M], [M, "no such directory"]),
]

# Read commands pointed at a state directory that does not exist.
READS_OF_STATE = [
    ["journal", "verify", "--state", M],
    ["journal", "read", "--state", M, "--key", EXAMPLE],
    ["data", "list", "--state", M],
    ["purchases", "list", "--state", M],
    ["guardian-code", "--state", M],
    ["lists", "info", "--out", M],
    ["apps", "--dir", M],
    ["lockdown", "check", "--root", M],
]


NO_BUS = "unix:path=/nonexistent/minormode-test-bus"


def ctl(argv: list[str], stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """minormodectl as a process: what reaches a pipe and the exit status the shell sees."""
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": NO_BUS}
    return subprocess.run([sys.executable, "-m", "agent.cli", *argv], text=True, cwd=ROOT, env=env,
                          check=False, timeout=60, stdout=stdout, stderr=subprocess.PIPE)


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every runnable subcommand path ("journal verify"), read from the parser itself."""
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                out |= leaf_commands(sub, path) or {path}
    return out


def filled(argv: list[str], missing: Path) -> list[str]:
    return [a.replace(M, str(missing)) for a in argv]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """minormodectl in this process (an uncaught exception, the traceback a user would see,
    fails the test): the exit status, argparse's own included, and standard error."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_every_subcommand_is_in_the_table() -> None:
    assert leaf_commands(build_parser()) == {name for name, _, _ in BAD_INPUT}


@pytest.mark.parametrize(("name", "argv", "named"), BAD_INPUT,
                         ids=[f"{n}:{' '.join(a[len(n.split()):])}" for n, a, _ in BAD_INPUT])
def test_bad_input_is_2_naming_it(name: str, argv: list[str], named: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if name.split(maxsplit=1)[0] in ROOT_ONLY and os.geteuid() != 0:
        pytest.skip("purchases checks root before its arguments")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
    missing = tmp_path / "missing"
    code, err = run(filled(argv, missing), capsys)
    assert code == Exit.BAD_INPUT, err
    for text in named:
        assert text.replace(M, str(missing)) in err
    assert tree(tmp_path) == set(), "bad input created files"


@pytest.mark.parametrize("argv", READS_OF_STATE, ids=[" ".join(a[:2]) for a in READS_OF_STATE])
def test_read_commands_create_nothing(argv: list[str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "state"
    code, err = run(filled(argv, missing), capsys)
    assert code == Exit.BAD_INPUT, err
    assert str(missing) in err
    assert not missing.exists() and tree(tmp_path) == set()


def test_purchases_in_a_state_without_a_ledger_create_none(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("purchases is root-only")
    assert main(["purchases", "list", "--state", str(tmp_path), "--json"]) == Exit.OK
    assert capsys.readouterr().out.strip() == "[]"
    assert main(["purchases", "list", "--state", str(tmp_path)]) == Exit.OK  # the text reads the zone
    code, err = run(["purchases", "approve", "r1", "--state", str(tmp_path)], capsys)
    assert code == Exit.BAD_INPUT and "no purchase 'r1'" in err
    assert tree(tmp_path) == set()


def test_guardian_code_from_a_state_without_a_trust_store(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["guardian-code", "--state", str(tmp_path)], capsys)
    assert code == Exit.BAD_INPUT and f"{tmp_path}/trust.sqlite" in err
    assert tree(tmp_path) == set()


def closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`minormodectl ... | head -0`, deterministic: the read end is closed before the
    command writes, so every write meets EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return ctl(argv, stdout=write)
    finally:
        os.close(write)


@pytest.mark.parametrize("argv", [
    ["explain", EXAMPLE, "--at", "2026-11-23T17:00", "--settings"], ["simulate", EXAMPLE, "--json"],
    ["lists", "info", "--out", "{tmp}"], ["apps", "--dir", "{tmp}"],
], ids=lambda a: " ".join(a[:2]).replace(str(ROOT), ""))
def test_a_closed_pipe_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "org.example.Calc.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Calc\nExec=/bin/true\nCategories=Utility;\n")
    done = closed_pipe([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert done.returncode == Exit.PIPE_CLOSED, done.stderr
    # nothing about the pipe (a command's own warnings, e.g. explain's missing lists, may stay)
    assert "Traceback" not in done.stderr and "pipe" not in done.stderr.lower(), done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_argparse_output_into_a_closed_pipe_is_dropped_quietly(argv: list[str]) -> None:
    """argparse itself ignores a failed write of --help and --version, and exits 0."""
    assert closed_pipe(argv).stderr == ""


def test_version() -> None:
    done = ctl(["--version"])
    assert done.returncode == 0
    assert done.stdout.strip() == f"minormodectl {version('minormode')}"


def test_status_without_an_agent_says_where_it_looked(tmp_path: Path) -> None:
    done = ctl(["status"])
    assert done.returncode == Exit.UNAVAILABLE
    assert "unix:path=/nonexistent/minormode-test-bus (DBUS_SYSTEM_BUS_ADDRESS)" in done.stderr
    assert "--bus ADDRESS" in done.stderr and "Traceback" not in done.stderr
    done = ctl(["status", "--bus", f"unix:path={tmp_path}/bus"])
    assert done.returncode == Exit.UNAVAILABLE
    assert f"unix:path={tmp_path}/bus (--bus)" in done.stderr
