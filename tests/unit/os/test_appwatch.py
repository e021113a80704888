"""The installs watch: which file-system changes count as "the installed apps changed"."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.os.appwatch import AppWatch, signature


def test_signature_sees_installs_removals_replacements_and_late_directories(tmp_path: Path) -> None:
    apps, late = tmp_path / "applications", tmp_path / "flatpak" / "exports"
    apps.mkdir()
    exe = tmp_path / "bin" / "maths"
    exe.parent.mkdir()
    exe.write_text("v1")
    dirs, files = (str(apps), str(late)), (str(exe),)
    first = signature(dirs, files)
    (apps / "readme.txt").write_text("not a desktop entry")
    os.utime(apps, ns=(0, 0))  # only the directory's mtime: a change
    assert signature(dirs, files) != first
    steady = signature(dirs, files)
    assert signature(dirs, files) == steady  # nothing changed: equal
    (apps / "org.example.Maths.desktop").write_text("[Desktop Entry]\n")
    installed = signature(dirs, files)
    assert installed != steady
    late.mkdir(parents=True)  # Flatpak's exports appear with the first Flatpak install
    appeared = signature(dirs, files)
    assert appeared != installed
    new = tmp_path / "bin" / "maths.new"
    new.write_text("v2")
    os.replace(new, exe)  # an upgrade: a new inode at the same path
    assert signature(dirs, files) != appeared


async def test_the_watch_rescans_once_per_settled_change(tmp_path: Path) -> None:
    apps = tmp_path / "applications"
    apps.mkdir()
    calls: list[int] = []

    async def rescan() -> None:
        calls.append(1)

    watch = AppWatch([str(apps)], lambda: (), rescan, every=0.02)
    task = asyncio.ensure_future(watch.run())
    loop = asyncio.get_running_loop()

    async def until(what: Callable[[], bool]) -> None:
        deadline = loop.time() + 5
        while not what():
            assert loop.time() < deadline, "condition not reached"
            await asyncio.sleep(0.01)

    try:
        await until(lambda: watch.readings >= 2)
        for i in range(3):
            (apps / f"app{i}.desktop").write_text("[Desktop Entry]\n")
        await until(lambda: bool(calls))
        read = watch.readings
        await until(lambda: watch.readings >= read + 10)  # ten readings with nothing new
        assert watch.rescans == len(calls) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_interval_must_be_positive() -> None:
    async def rescan() -> None:
        return None

    with pytest.raises(ValueError, match="positive"):
        AppWatch([], lambda: (), rescan, every=0)
