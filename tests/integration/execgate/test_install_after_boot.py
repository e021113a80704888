"""An app installed after the agent started gets its verdict without a restart: the
installs watch (`agent.os.appwatch.AppWatch`, as `Services` wires it) rescans the real
gate's catalogue; an allowed new app then runs for the child, a blocked one stays refused,
and an upgrade that replaces an allowed app's binary (a new inode, new content) is judged
again and keeps running."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import gatekit
import pytest
from support.sessionbus import until

from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.table import GateConfig
from agent.os.appwatch import AppWatch
from agent.store.events import MemoryEventSink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]

NOW = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)


async def _child(*argv: str) -> int:
    return (await asyncio.to_thread(gatekit.as_child, list(argv))).returncode


async def test_apps_installed_after_start_get_verdicts_without_a_restart() -> None:
    with gatekit.private_tmpfs() as fs:
        desktop = fs / "share" / "applications"
        desktop.mkdir(parents=True)
        config = AppGuardConfig(
            marks=(str(fs),), child_uids=frozenset({gatekit.CHILD_UID}),
            desktop_dirs=(str(desktop), str(fs / "flatpak" / "exports")),  # the second appears later
            gate=GateConfig(also_restricted=frozenset({gatekit.CHILD_UID}),
                            child_writable=(f"{fs}/home/",)),
            grace_seconds=1.0)
        guard = AppGuard(config, MemoryEventSink(), lambda a, t: None, lambda down: None, lambda: NOW)
        await guard.start(gatekit.access(allowed=["org.example.Maths"]))
        watch = AppWatch(config.desktop_dirs,
                         lambda: [e for a in guard.apps.values() for e in a.executables],
                         guard.rescan, every=0.05)
        task = asyncio.ensure_future(watch.run())
        try:
            maths = gatekit.make_binary(fs / "apps" / "maths", tag="maths")
            game = gatekit.make_binary(fs / "apps" / "game", tag="game")
            assert await _child("sh", "-c", str(maths)) == 126  # not installed yet: unknown
            gatekit.write_desktop(desktop, "org.example.Maths", "Maths", maths, "Education;")
            gatekit.write_desktop(fs / "flatpak" / "exports", "org.example.Game", "Game", game, "Game;")
            await until(lambda: {"org.example.Maths", "org.example.Game"} <= guard.apps.keys())
            await until(lambda: watch.rescans >= 1)
            assert await _child("sh", "-c", str(maths)) == 0  # allowed, now known
            assert await _child("sh", "-c", str(game)) == 126  # known, and not allowed

            before = watch.rescans
            upgraded = gatekit.make_binary(fs / "apps" / "maths.new", tag="other content")
            os.replace(upgraded, maths)  # how dpkg replaces a file: a new inode
            await until(lambda: watch.rescans > before)
            assert await _child("sh", "-c", str(maths)) == 0  # the new content is the app's now
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await guard.stop()
