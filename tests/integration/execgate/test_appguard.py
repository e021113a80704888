"""AppGuard end to end on the asyncio loop: the daemon's view of app enforcement."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime

import gatekit
import pytest

from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.table import GateConfig
from agent.store.events import EventKind, MemoryEventSink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]

NOW = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)


async def _until(what: Callable[[], bool], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not what():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _child(*argv: str) -> int:
    return (await asyncio.to_thread(gatekit.as_child, list(argv))).returncode


async def test_app_guard_blocks_reports_once_stops_and_survives_a_gate_kill() -> None:
    with gatekit.private_tmpfs() as fs:
        desktop = fs / "share" / "applications"
        game = gatekit.make_binary(fs / "apps" / "game", tag="game")
        chess = gatekit.make_binary(fs / "apps" / "chess", source="/bin/sleep", tag="chess")
        gatekit.write_desktop(desktop, "org.example.Game", "Game", game)
        gatekit.write_desktop(desktop, "org.example.Chess", "Chess", chess, "Game;")
        stranger = gatekit.make_binary(fs / "opt" / "stranger", tag="stranger")
        config = AppGuardConfig(
            marks=(str(fs),),
            child_uids=frozenset({gatekit.CHILD_UID}),
            desktop_dirs=(str(desktop),),
            gate=GateConfig(
                also_restricted=frozenset({gatekit.CHILD_UID}),
                child_writable=(f"{fs}/home/",),
            ),
            grace_seconds=1.0,
        )
        sink, told, locked = MemoryEventSink(), [], []
        guard = AppGuard(config, sink, lambda a, t: told.append(t), locked.append, lambda: NOW)
        chess_proc: subprocess.Popen[bytes] | None = None
        tracking: asyncio.Future[None] | None = None
        await guard.start(gatekit.access(allowed=["org.example.Chess"]))
        try:
            assert await _child("sh", "-c", str(game)) == 126
            assert await _child("sh", "-c", str(game)) == 126
            assert await _child("sh", "-c", str(stranger)) == 126
            blocked = lambda: [e for e in sink.events if e.kind is EventKind.APP_BLOCKED]  # noqa: E731
            await _until(lambda: len(blocked()) == 2)
            assert [e.data["app_id"] for e in blocked()] == ["org.example.Game", None]
            assert told == ["Game is not allowed now", "This program is not allowed now"]

            started: list[tuple[str, frozenset[str]]] = []
            stopped: list[str] = []
            tracking = asyncio.ensure_future(
                guard.run_tracking(lambda a, c: started.append((a, c)), stopped.append, 0.02)
            )
            chess_proc = subprocess.Popen(
                [str(chess), "600"],
                user=gatekit.CHILD_UID,
                group=gatekit.CHILD_UID,
                extra_groups=[],
                cwd="/",
            )
            await _until(lambda: ("org.example.Chess", frozenset({"Game"})) in started)
            spent = gatekit.access(allowed=["org.example.Chess"], limits_spent=["org.example.Chess"])
            results = await guard.apply(spent)
            assert results["org.example.Chess"].terminated == {chess_proc.pid}
            assert chess_proc.wait(5) == -signal.SIGTERM
            assert told[-1] == "Chess's time for today is used up"
            assert await _child("sh", "-c", f"{chess} 0") == 126  # the new table is in force
            await _until(lambda: stopped == ["org.example.Chess"])

            gate_pid = guard._supervisor.pid if guard._supervisor else None
            assert gate_pid is not None
            os.kill(gate_pid, signal.SIGKILL)
            await _until(lambda: locked == [True, False])
            outages = [e for e in sink.events if e.kind is EventKind.GATE_OUTAGE]
            assert [e.data["phase"] for e in outages] == ["start", "end"]
            assert await _child("sh", "-c", str(game)) == 126
        finally:
            if chess_proc is not None and chess_proc.poll() is None:
                chess_proc.kill()
                chess_proc.wait()
            if tracking is not None:
                tracking.cancel()
            await guard.stop()
