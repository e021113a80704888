"""AppGuard end to end on the asyncio loop: the daemon's view of app enforcement."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import gatekit
import pytest

from agent.execgate.appguard import AppGuard, AppGuardConfig, BaseError
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
        guard.language = "en"  # as a Decision for an English-speaking child sets it
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
            assert told == ["Game is not allowed now.", "This program is not allowed now."]

            started: list[tuple[str, frozenset[str]]] = []
            stopped: list[str] = []
            # the safety look an hour away: the start is seen through the execs the gate
            # saw, the end through the process's pidfd
            tracking = asyncio.ensure_future(
                guard.run_tracking(lambda a, c: started.append((a, c)), stopped.append, 0.02, safety=3600)
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
            assert told[-1] == "Chess's time for today is used up."
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


CGROUP_ROOT = Path("/sys/fs/cgroup/systemd")  # cgroup v1's named hierarchy on these hosts


@contextmanager
def _scope(unit: str) -> Iterator[Path]:
    """A cgroup named like a desktop's app scope, under a test-owned parent; removed after."""
    if not CGROUP_ROOT.is_dir():
        pytest.skip("no cgroup v1 name=systemd hierarchy to make a scope in")
    parent = CGROUP_ROOT / f"minormode-test-{os.getpid()}"
    scope = parent / unit
    scope.mkdir(parents=True)
    try:
        yield scope
    finally:
        for pid in (scope / "cgroup.procs").read_text().split():  # back to the root cgroup
            with suppress(ProcessLookupError):
                (CGROUP_ROOT / "cgroup.procs").write_text(pid)
        scope.rmdir()
        parent.rmdir()


async def test_a_game_in_a_scope_named_after_an_always_allowed_app_counts_as_the_game() -> None:
    """`systemd-run --user --unit=app-gnome-org.example.Phone-77.scope game`: the child
    chose the unit name; the gate verified the game. Its time is the game's, and when the
    game's own limit is spent the game is stopped, scope name or not."""
    with gatekit.private_tmpfs() as fs, _scope("app-gnome-org.example.Phone-77.scope") as scope:
        desktop = fs / "share" / "applications"
        game = gatekit.make_binary(fs / "apps" / "game", source="/bin/sleep", tag="game")
        phone = gatekit.make_binary(fs / "apps" / "phone", source="/bin/sleep", tag="phone")
        gatekit.write_desktop(desktop, "org.example.Game", "Game", game, "Game;")
        gatekit.write_desktop(desktop, "org.example.Phone", "Phone", phone, "Telephony;")
        config = AppGuardConfig(
            marks=(str(fs),),
            child_uids=frozenset({gatekit.CHILD_UID}),
            desktop_dirs=(str(desktop),),
            gate=GateConfig(also_restricted=frozenset({gatekit.CHILD_UID})),
            grace_seconds=1.0,
        )
        sink, told = MemoryEventSink(), []
        guard = AppGuard(config, sink, lambda a, t: told.append(t), lambda _down: None, lambda: NOW)
        rules = {"allowed": ["org.example.Game"], "always": ["org.example.Phone"]}
        await guard.start(gatekit.access(**rules))  # type: ignore[arg-type]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for exe in (game, phone):  # the real phone in the same scope still is the phone
                proc = subprocess.Popen([str(exe), "600"], user=gatekit.CHILD_UID,
                                        group=gatekit.CHILD_UID, extra_groups=[], cwd="/")
                procs.append(proc)
                (scope / "cgroup.procs").write_text(str(proc.pid))
            assert f"/{scope.parent.name}/{scope.name}" in Path(f"/proc/{procs[0].pid}/cgroup").read_text()
            changes = await guard.poll()
            assert changes.started == {"org.example.Game", "org.example.Phone"}
            running = guard._running()
            assert running == {"org.example.Game": {procs[0].pid}, "org.example.Phone": {procs[1].pid}}
            spent = gatekit.access(**rules, limits_spent=["org.example.Game"])  # type: ignore[arg-type]
            results = await guard.apply(spent)
            assert set(results) == {"org.example.Game"}
            assert results["org.example.Game"].terminated == {procs[0].pid}
            assert procs[0].wait(5) == -signal.SIGTERM and procs[1].poll() is None
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            await guard.stop()


async def test_the_guard_refuses_to_start_with_a_shell_in_the_base() -> None:
    """A manufacturer's `--exec-gate-base /bin/sh` would give the child a shell: refused,
    nothing marked (the runtime then stops, as for a base path that does not exist)."""
    with gatekit.private_tmpfs() as fs:
        config = AppGuardConfig(marks=(str(fs),), desktop_dirs=(str(fs / "none"),),
                                gate=GateConfig(base_paths=("/usr/bin/dbus-daemon", "/bin/sh")))
        guard = AppGuard(config, MemoryEventSink(), lambda a, t: None, lambda _d: None, lambda: NOW)
        with pytest.raises(BaseError, match=r"/bin/sh( \(-> [^)]*\))?: a shell"):
            await guard.start(gatekit.access())
        assert guard._supervisor is None
