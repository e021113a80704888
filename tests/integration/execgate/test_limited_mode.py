"""Time up without losing calls, through the real exec gate on a private tmpfs: the verdicts
come from the real `decide` (the default policy's limited mode). After the budget is spent
the call app starts and a game does not, and a game already running is stopped; in the
curfew only the emergency app starts, not even the call app."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import timedelta

import gatekit
import pytest
from support.scenario import iso, policy

from agent.core.decide import decide
from agent.core.decision import LockReason
from agent.core.usage import Interval, Usage
from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.table import GateConfig
from agent.store.events import MemoryEventSink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]


async def _child(*argv: str) -> int:
    return (await asyncio.to_thread(gatekit.as_child, list(argv))).returncode


async def test_after_time_is_up_the_call_app_starts_and_a_game_does_not() -> None:
    pol = policy(waive=["windows", "school", "rest", "games"], apps={"default": "allow"})
    afternoon = iso("2026-11-23T17:00")
    spent = decide(pol, afternoon, Usage(active=(Interval(afternoon - timedelta(minutes=60), afternoon),)))
    assert spent.locked and spent.reason is LockReason.BUDGET_SPENT and not spent.lock_screen
    curfew = decide(pol, iso("2026-11-23T22:30"), Usage())
    assert curfew.locked and curfew.reason is LockReason.CURFEW
    with gatekit.private_tmpfs() as fs:
        desktop = fs / "share" / "applications"
        calls = gatekit.make_binary(fs / "apps" / "calls", tag="calls")
        sos = gatekit.make_binary(fs / "apps" / "sos", tag="sos")
        game = gatekit.make_binary(fs / "apps" / "game", source="/bin/sleep", tag="game")
        gatekit.write_desktop(desktop, "org.example.Calls", "Calls", calls, "Telephony;")
        gatekit.write_desktop(desktop, "org.example.SOS", "SOS", sos, "Emergency;")
        gatekit.write_desktop(desktop, "org.example.Game", "Game", game, "Game;")
        config = AppGuardConfig(
            marks=(str(fs),), child_uids=frozenset({gatekit.CHILD_UID}), desktop_dirs=(str(desktop),),
            gate=GateConfig(also_restricted=frozenset({gatekit.CHILD_UID}), child_writable=(f"{fs}/home/",)),
            grace_seconds=1.0)
        told: list[str] = []
        guard = AppGuard(config, MemoryEventSink(), lambda a, t: told.append(t), lambda down: None,
                         lambda: afternoon)
        free = decide(pol, afternoon - timedelta(minutes=30), Usage())
        await guard.start(free.apps)
        playing = subprocess.Popen([str(game), "600"], user=gatekit.CHILD_UID, group=gatekit.CHILD_UID,
                                   extra_groups=[], cwd="/")
        try:
            results = await guard.apply(spent.apps)  # time is up
            assert playing.pid in results["org.example.Game"].terminated
            assert playing.wait(5) == -signal.SIGTERM
            assert await _child("sh", "-c", str(calls)) == 0  # the call app starts
            assert await _child("sh", "-c", f"{game} 0") == 126  # the game does not
            assert await _child("sh", "-c", str(sos)) == 0

            await guard.apply(curfew.apps)  # the night: only the emergency set
            assert await _child("sh", "-c", str(sos)) == 0
            assert await _child("sh", "-c", str(calls)) == 126
            assert await _child("sh", "-c", f"{game} 0") == 126
        finally:
            if playing.poll() is None:
                playing.kill()
                playing.wait()
            await guard.stop()
