"""Parsing .desktop files (pure) and scanning a directory of them."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from agent.execgate.catalogue import (
    DesktopFileError,
    apps_by_executable,
    parse_desktop,
    parse_exec,
    parse_shebang,
    scan,
    script_chain,
)

GAME = """\
# comment
[Desktop Entry]
Type=Application
Name=Super Game
Name[fr]=Super Jeu
Exec=supergame --fullscreen %U
TryExec=supergame
Categories=Game;ArcadeGame;

[Desktop Action New]
Exec=ignored
"""


def test_parse_desktop_reads_the_entry_group_only() -> None:
    entry = parse_desktop(GAME, "/usr/share/applications/org.example.Game.desktop")
    assert entry is not None
    assert entry.app_id == "org.example.Game"
    assert entry.name == "Super Game"
    assert entry.exec_argv == ("supergame", "--fullscreen")
    assert entry.try_exec == "supergame"
    assert entry.categories == {"Game", "ArcadeGame"}
    assert entry.flatpak_id is None


def test_parse_exec_handles_quotes_escapes_and_field_codes() -> None:
    assert parse_exec('"/opt/My App/run" --x %f %%', "f") == ("/opt/My App/run", "--x", "%")
    # string escapes come first (\\s is a space), then the quoting rules split words
    assert parse_exec("/opt/a\\sb %U", "f") == ("/opt/a", "b")
    assert parse_exec('"/opt/a\\sb" %U', "f") == ("/opt/a b",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Desktop Entry\nName=x\n", "f.desktop:1: malformed group header"),
        ("[Desktop Entry]\nName\n", "f.desktop:2: expected key=value"),
        ("[Desktop Entry]\nExec=x\n", "f.desktop: Name= is missing"),
        ("[Desktop Entry]\nName=x\nExec=%U\n", "f.desktop: Exec= is empty"),
        ("[Desktop Entry]\nName=x\nExec='open\n", "f.desktop: Exec= cannot be parsed"),
        ("", "f.desktop: no [Desktop Entry] group"),
    ],
)
def test_bad_desktop_files_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DesktopFileError, match=message.replace("[", r"\[")):
        parse_desktop(text, "f.desktop")


@pytest.mark.parametrize(
    "text",
    [
        "[Desktop Entry]\nType=Link\nName=x\nURL=http://e\n",
        "[Desktop Entry]\nName=x\nExec=y\nHidden=true\n",
        "[Desktop Entry]\nName=x\n",
    ],
)
def test_non_launchable_entries_are_skipped(text: str) -> None:
    assert parse_desktop(text, "x.desktop") is None


def test_not_a_desktop_file_name_is_an_error() -> None:
    with pytest.raises(DesktopFileError, match=r"notes\.txt: not a \.desktop file name"):
        parse_desktop(GAME, "/x/notes.txt")


def test_flatpak_entry_owns_its_app_directory(tmp_path: Path) -> None:
    apps_dir = tmp_path / "apps"
    apps_dir.mkdir()
    (apps_dir / "org.example.Paint.desktop").write_text(
        "[Desktop Entry]\nName=Paint\nExec=/usr/bin/flatpak run org.example.Paint\n"
        "X-Flatpak=org.example.Paint\nCategories=Graphics;\n"
    )
    root = tmp_path / "flatpak"
    files = root / "org.example.Paint" / "x86_64" / "stable" / "abc" / "files"
    (files / "bin").mkdir(parents=True)
    (files / "bin" / "paint").write_bytes(b"\x7fELF")
    (files / "bin" / "paint").chmod(0o755)
    (files / "share.txt").write_text("data")
    os.symlink("/bin/true", files / "bin" / "link")
    app = scan([str(apps_dir)], flatpak_root=str(root)).apps["org.example.Paint"]
    assert app.prefixes == (f"{root}/org.example.Paint/",)
    assert app.executables == ()  # the shared launcher is OS base, not the app's
    assert app.tree_files == (str(files / "bin" / "paint"),)  # no data file, no symlink


def test_scan_resolves_executables_hashes_them_and_reports_bad_files(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = bindir / "supergame-1.2"
    real.write_bytes(b"\x7fELF fake game")
    real.chmod(real.stat().st_mode | stat.S_IXUSR)
    os.symlink(real, bindir / "supergame")
    apps_dir = tmp_path / "applications"
    (apps_dir / "sub").mkdir(parents=True)
    (apps_dir / "org.example.Game.desktop").write_text(GAME)
    (apps_dir / "sub" / "broken.desktop").write_text("[Desktop Entry]\nExec=x\n")
    (apps_dir / "gone.desktop").write_text("[Desktop Entry]\nName=Gone\nExec=not-there\n")
    result = scan([str(apps_dir)], search_path=str(bindir), session_apps=frozenset({"gone"}))
    game = result.apps["org.example.Game"]
    assert game.executables == (str(real),)
    assert game.hashes == {hashlib.sha256(b"\x7fELF fake game").hexdigest()}
    assert game.categories == {"Game", "ArcadeGame"}
    assert result.apps["gone"].executables == () and result.apps["gone"].needed_by_session
    assert len(result.errors) == 1 and "broken.desktop" in result.errors[0]
    assert apps_by_executable(result.apps) == {str(real): {"org.example.Game"}}


def test_first_directory_wins_for_an_app_id(tmp_path: Path) -> None:
    for d, name in (("a", "First"), ("b", "Second")):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.desktop").write_text(f"[Desktop Entry]\nName={name}\nExec=/bin/true\n")
    result = scan([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "missing")])
    assert result.apps["x"].name == "First"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"#!/bin/sh\necho", ("/bin/sh",)),
        (b"#! /usr/bin/env -S python3 -u\n", ("/usr/bin/env", "-S", "python3", "-u")),
        (b"\x7fELF\x02", ()),
        (b"", ()),
    ],
)
def test_parse_shebang(head: bytes, expected: tuple[str, ...]) -> None:
    assert parse_shebang(head) == expected


def test_script_apps_record_their_interpreter(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    interp = bindir / "python3"
    interp.write_bytes(b"\x7fELF")
    interp.chmod(0o755)
    for name, line in (("direct", f"#!{interp}"), ("viaenv", "#!/usr/bin/env python3")):
        (bindir / name).write_text(f"{line}\nprint('hi')\n")
        (bindir / name).chmod(0o755)
    apps_dir = tmp_path / "apps"
    apps_dir.mkdir()
    for name in ("direct", "viaenv"):
        (apps_dir / f"{name}.desktop").write_text(f"[Desktop Entry]\nName={name}\nExec={name}\n")
    apps = scan([str(apps_dir)], search_path=str(bindir)).apps
    assert apps["direct"].interpreters == (str(interp),)
    assert apps["viaenv"].interpreters == (str(interp),)
    # what the kernel execs next, in order: env itself, then what env runs
    assert script_chain(str(bindir / "direct"), str(bindir)) == (str(interp),)
    env = os.path.realpath("/usr/bin/env")
    assert script_chain(str(bindir / "viaenv"), str(bindir)) == (env, str(interp))
    assert script_chain(str(interp), str(bindir)) == ()
