"""Attributing processes to app IDs from systemd app units, and running intervals."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.core.usage import Interval
from agent.execgate.apptracker import AppTracker, Attributor, app_id_from_cgroup, app_id_from_unit
from agent.execgate.catalogue import scan

KNOWN = {"org.gnome.Nautilus", "org.example.My-Game", "firefox"}


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("app-gnome-org.gnome.Nautilus-1234.scope", "org.gnome.Nautilus"),
        ("app-flatpak-org.example.My\\x2dGame-5678.scope", "org.example.My-Game"),
        ("app-org.gnome.Nautilus@ab12.service", "org.gnome.Nautilus"),
        ("app-gnome-firefox@x.service", "firefox"),
        ("app-gnome-org.unknown.App-1.scope", None),
        ("app-gnome-org.gnome.Nautilus-1.slice", None),
    ],
)
def test_app_id_from_unit(unit: str, expected: str | None) -> None:
    assert app_id_from_unit(unit, KNOWN) == expected


def test_app_id_from_cgroup_v2_and_v1() -> None:
    v2 = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-99.scope\n"
    v1 = (
        "12:pids:/user.slice\n"
        "1:name=systemd:/user.slice/user-1000.slice/user@1000.service/app.slice/"
        "app-flatpak-org.example.My\\x2dGame-5.scope/sub\n"
    )
    assert app_id_from_cgroup(v2, KNOWN) == "firefox"
    assert app_id_from_cgroup(v1, KNOWN) == "org.example.My-Game"
    assert app_id_from_cgroup("0::/user.slice/session-2.scope\n", KNOWN) is None


def test_tracker_turns_snapshots_into_intervals() -> None:
    t0 = datetime(2026, 11, 22, 9, tzinfo=UTC)
    snaps = iter(
        [
            {"a": frozenset({1})},
            {"a": frozenset({1}), "b": frozenset({2})},
            {"b": frozenset({2}), "a": frozenset()},
            {},
        ]
    )
    tracker = AppTracker(lambda: next(snaps))
    assert tracker.poll(t0).started == {"a"}
    assert tracker.poll(t0 + timedelta(minutes=1)).started == {"b"}
    changes = tracker.poll(t0 + timedelta(minutes=5))
    assert changes.stopped == {"a"} and not changes.started
    now = t0 + timedelta(minutes=7)
    assert tracker.intervals_at(now) == {
        "a": (Interval(t0, t0 + timedelta(minutes=5)),),
        "b": (Interval(t0 + timedelta(minutes=1), now),),
    }
    tracker.poll(now)
    tracker.forget_before(t0 + timedelta(minutes=6))
    assert set(tracker.closed) == {"b"}


def _desktop(directory: Path, app_id: str, exe: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{app_id}.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName={app_id}\nExec={exe}\n"
    )


@pytest.mark.parametrize("shebang", ["#!/bin/sh", "#!/bin/sh -e", "#!/usr/bin/env sh"])
def test_a_script_app_is_the_script_in_its_interpreters_argv_not_an_argument(
    tmp_path: Path, shebang: str
) -> None:
    """Two script apps share /bin/sh: each process is the app whose script the kernel put
    where its `#!` line says; naming the other app's script as an argument, or calling the
    interpreter with it behind an option, claims nothing."""
    scripts = {}
    for name in ("homework", "phone"):
        script = tmp_path / name
        script.write_text(f"{shebang}\nsleep 30\n")
        script.chmod(0o755)
        scripts[name] = script
        _desktop(tmp_path / "apps", f"org.example.{name}", script)
    apps = scan([str(tmp_path / "apps")]).apps
    attributor = Attributor(apps)
    procs = [
        subprocess.Popen([str(scripts["homework"]), str(scripts["phone"])]),
        subprocess.Popen(["/bin/sh", "-c", "sleep 30", str(scripts["phone"])]),
    ]
    try:
        deadline = time.monotonic() + 10
        while attributor.app_of(procs[0].pid) is None:  # until the shell is exec'd
            assert time.monotonic() < deadline
        assert attributor.owners_of(procs[0].pid) == {"org.example.homework"}
        assert attributor.app_of(procs[1].pid) is None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
