"""Caller identification: cgroup scope names and the executable map."""

from __future__ import annotations

import os
import sys

import pytest

from agent.api.callers import ExeMapIdentifier, app_id_from_cgroup


@pytest.mark.parametrize(
    ("text", "app"),
    [
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
         "app-gnome-org.gnome.Calculator-4242.scope\n", "org.gnome.Calculator"),
        ("0::/user.slice/user@1000.service/app.slice/app-flatpak-com.example.Shop-77.scope",
         "com.example.Shop"),
        ("0::/user.slice/user@1000.service/app.slice/app-org.example.My\\x2dGame-1a2b.scope",
         "org.example.My-Game"),
        ("12:pids:/user.slice\n0::/user.slice/user-1000.slice/session-2.scope", None),
        ("", None),
    ],
)
def test_app_id_from_cgroup(text: str, app: str | None) -> None:
    assert app_id_from_cgroup(text) == app


def test_exe_map_identifies_this_process_by_its_real_executable() -> None:
    exe = os.path.realpath(sys.executable)
    ident = ExeMapIdentifier({sys.executable: "org.example.Python"})
    assert ident.identify(os.getpid(), os.getuid()) == "org.example.Python"
    assert ExeMapIdentifier({"/usr/bin/true": "x"}).identify(os.getpid(), 0) is None
    assert ExeMapIdentifier({exe: "x"}).identify(2**22 + 12345, 0) is None  # no such pid


def test_from_catalogue_leaves_shared_executables_out() -> None:
    exe = os.path.realpath(sys.executable)
    shared = ExeMapIdentifier.from_catalogue({exe: frozenset({"org.a", "org.b"})})
    assert shared.identify(os.getpid(), os.getuid()) is None
    single = ExeMapIdentifier.from_catalogue({exe: frozenset({"org.a"})})
    assert single.identify(os.getpid(), os.getuid()) == "org.a"
