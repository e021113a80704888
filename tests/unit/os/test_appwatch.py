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


async def _until(what: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not what():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_the_watch_is_told_by_inotify_and_rescans_once_per_settled_change(tmp_path: Path) -> None:
    """With the safety reading an hour away, only inotify can start a reading: three
    entries written make one rescan, and writes that change nothing (a file's content in
    the tree) are read and make none."""
    apps = tmp_path / "applications"
    apps.mkdir()
    (apps / "readme.txt").write_text("0")
    calls: list[int] = []

    async def rescan() -> None:
        calls.append(1)

    watch = AppWatch([str(apps)], lambda: (), rescan, every=0.02, safety=3600)
    task = asyncio.ensure_future(watch.run())
    try:
        await _until(lambda: watch.readings >= 1)
        for i in range(3):
            (apps / f"app{i}.desktop").write_text("[Desktop Entry]\n")
        await _until(lambda: bool(calls))
        for i in range(5):  # content only: the directory's stat facts stay the same
            read = watch.readings
            (apps / "readme.txt").write_text(str(i))
            await _until(lambda read=read: watch.readings > read)
        assert watch.rescans == len(calls) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_directory_made_after_start_is_watched_too(tmp_path: Path) -> None:
    """Flatpak's exports tree does not exist before the first Flatpak install: its
    nearest parent is watched, then the tree and its subdirectories once they exist."""
    late = tmp_path / "flatpak" / "exports" / "share" / "applications"
    calls: list[int] = []

    async def rescan() -> None:
        calls.append(1)

    watch = AppWatch([str(late)], lambda: (), rescan, every=0.02, safety=3600)
    task = asyncio.ensure_future(watch.run())
    try:
        await _until(lambda: watch.readings >= 1)
        late.mkdir(parents=True)
        await _until(lambda: len(calls) == 1)
        (late / "sub").mkdir()
        await _until(lambda: len(calls) == 2)
        (late / "sub" / "org.example.Game.desktop").write_text("[Desktop Entry]\n")
        await _until(lambda: len(calls) == 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_directory_inotify_cannot_watch_makes_it_read_every_interval(tmp_path: Path) -> None:
    """An executable whose directory cannot be watched (here: missing) leaves the watch
    blind to it, so it falls back to reading every `every` seconds."""
    watch = AppWatch([str(tmp_path)], lambda: ("/nonexistent-minormode/bin/x",), _no_rescan,
                     every=0.01, safety=3600)
    task = asyncio.ensure_future(watch.run())
    try:
        await _until(lambda: watch.readings >= 5)  # no event ever comes: these are polls
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _no_rescan() -> None:
    return None


def test_the_intervals_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AppWatch([], lambda: (), _no_rescan, every=0)
    with pytest.raises(ValueError, match="positive"):
        AppWatch([], lambda: (), _no_rescan, safety=0)
