"""The man page and the bash completion generated from minormodectl's parser: the page
renders without a groff warning and documents every command and exit status; the
completion, run in a real bash, completes commands, subcommands, options and choices."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.cli.errors import Exit
from agent.cli.main import build_parser
from agent.cli.manpage import bash, commands, man


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff to render the page")
def test_the_man_page_renders_and_documents_every_command(tmp_path: Path) -> None:
    page = tmp_path / "minormodectl.1"
    page.write_text(man())
    warnings = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True,
                              text=True, check=True)
    assert warnings.stderr == ""
    text = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", str(page)], capture_output=True,
                          text=True, check=True).stdout
    words = " ".join(text.split())  # groff justifies lines with extra spaces
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT"):
        assert f"\n{section}\n" in text
    leaves = [path for path, _, sub in commands(build_parser())
              if not any(a.__class__.__name__ == "_SubParsersAction" for a in sub._actions)]
    assert len(leaves) > 20
    for path in leaves:
        assert f"minormodectl {path}" in words, path
    exit_status = text.split("\nEXIT STATUS\n", 1)[1].split("\nENVIRONMENT\n", 1)[0]
    tags = [line.split()[0] for line in exit_status.splitlines()
            if line.startswith(" " * 7) and not line.startswith(" " * 8)]  # .TP tags, at the indent
    assert tags == [
        str(code.value) for code in Exit]


def complete(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers for the last of `words` (an empty one: a fresh word)."""
    script = tmp_path / "minormodectl.bash"
    script.write_text(bash())
    line = " ".join(f"'{w}'" for w in ("minormodectl", *words))
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c",
         f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _minormodectl; '
         'printf "%s\\n" "${COMPREPLY[@]}"'],
        capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return sorted(x for x in done.stdout.splitlines() if x)


def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    assert complete(tmp_path, "jou") == ["journal"]
    assert complete(tmp_path, "journal", "") == ["--help", "export", "pair", "read", "verify"]
    assert complete(tmp_path, "journal", "verify", "--") == ["--help", "--json", "--state"]
    assert complete(tmp_path, "simulate", "policy.toml", "--f") == ["--from"]
    assert complete(tmp_path, "--") == ["--help", "--version"]
    assert "help" in complete(tmp_path, "report", "")  # a positional's choices
    assert complete(tmp_path, "sync", "status", "--b") == ["--bus"]
