"""Per-app limits and the end of the budget, on real processes of the child's uid.

Fake apps are tagged copies of /bin/sleep on a private tmpfs that the exec gate marks;
they are attributed by executable (no systemd scopes here) and stopped through pidfds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import gatekit
import pytest

from agent.execgate.appstop import AppStopper
from agent.execgate.apptracker import AppTracker, Attributor, running_apps
from agent.execgate.catalogue import scan
from agent.execgate.loop import ExecGate
from agent.execgate.table import GateConfig, build_table
from agent.store.events import EventKind, MemoryEventSink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
APPS = {
    "video": "org.example.Video",
    "stubborn": "org.example.Stubborn",
    "phone": "org.example.Phone",
    "chess": "org.example.Chess",
}


def test_spent_limit_stops_the_app_and_always_allowed_keeps_running() -> None:
    procs: list[subprocess.Popen[bytes]] = []
    with gatekit.private_tmpfs() as fs:
        desktop = fs / "share" / "applications"
        for name, app_id in APPS.items():
            exe = gatekit.make_binary(fs / "apps" / name, source="/bin/sleep", tag=name)
            gatekit.write_desktop(desktop, app_id, name.title(), exe)
        apps = scan([str(desktop)]).apps
        config = GateConfig(also_restricted=frozenset({gatekit.CHILD_UID}), child_writable=(f"{fs}/home/",))
        allowed = [APPS["video"], APPS["stubborn"], APPS["chess"]]
        gate = ExecGate(
            [str(fs)],
            build_table(apps, gatekit.access(allowed=allowed, always=[APPS["phone"]]), config, 1),
        )
        gate.start()
        try:
            _run(fs, apps, config, gate, allowed, procs)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            gate.stop()


def _launch(fs, name: str, ignore_term: bool = False) -> subprocess.Popen[bytes]:
    exe = str(fs / "apps" / name)
    argv = ["sh", "-c", f'trap "" TERM; exec {exe} 600'] if ignore_term else [exe, "600"]
    return subprocess.Popen(argv, user=gatekit.CHILD_UID, group=gatekit.CHILD_UID, extra_groups=[], cwd="/")


def _run(fs, apps, config, gate, allowed, procs) -> None:
    video, stubborn, phone, chess = (
        _launch(fs, "video"),
        _launch(fs, "stubborn", True),
        _launch(fs, "phone"),
        _launch(fs, "chess"),
    )
    procs += [video, stubborn, phone, chess]
    attributor = Attributor(apps)
    snapshot = lambda: running_apps(attributor, {gatekit.CHILD_UID})  # noqa: E731
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(snapshot()) < 4:  # `sh` has exec'd the stubborn app once it is attributed
        assert datetime.now(UTC) < deadline, snapshot()
    running = snapshot()
    assert running == {
        APPS["video"]: {video.pid},
        APPS["stubborn"]: {stubborn.pid},
        APPS["phone"]: {phone.pid},
        APPS["chess"]: {chess.pid},
    }
    tracker = AppTracker(snapshot)
    assert tracker.poll(T0).started == frozenset(APPS.values())

    # Video's and Stubborn's own limits are spent: the Decision says so.
    spent = gatekit.access(
        allowed=allowed, always=[APPS["phone"]], limits_spent=[APPS["video"], APPS["stubborn"]]
    )
    gate.update(build_table(apps, spent, config, 2))
    sink, told = MemoryEventSink(), []
    stopper = AppStopper(apps, sink, lambda app_id, text: told.append(text), grace=0.5, language="en")
    results = asyncio.run(stopper.enforce(spent, running, T0 + timedelta(minutes=30)))
    assert set(results) == {APPS["video"], APPS["stubborn"]}
    assert results[APPS["video"]].terminated == {video.pid}
    assert results[APPS["stubborn"]].killed == {stubborn.pid}  # ignored SIGTERM
    assert video.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL
    assert phone.poll() is None and chess.poll() is None
    assert told == ["Stubborn's time for today is used up.", "Video's time for today is used up."]
    assert [(e.kind, e.data["app_id"], e.data["killed"]) for e in sink.events] == [
        (EventKind.APP_STOPPED, APPS["stubborn"], 1),
        (EventKind.APP_STOPPED, APPS["video"], 0),
    ]
    # ... and relaunching it is refused by the gate.
    assert gatekit.as_child(["sh", "-c", f"{fs}/apps/video 0"]).returncode == 126
    changes = tracker.poll(T0 + timedelta(minutes=31))
    assert changes.stopped == {APPS["video"], APPS["stubborn"]} and not changes.started
    assert tracker.intervals_at(T0 + timedelta(minutes=31))[APPS["video"]][0].seconds == 31 * 60

    # The device budget ends: all but always-allowed apps stop.
    locked = gatekit.access(allowed=allowed, always=[APPS["phone"]], device_locked=True)
    results = asyncio.run(stopper.enforce(locked, snapshot(), T0 + timedelta(minutes=40)))
    assert set(results) == {APPS["chess"]}
    assert chess.wait(5) == -signal.SIGTERM
    assert phone.poll() is None
    assert sink.events[-1].data["reason"] == "device_locked"
    assert told[-1] == "Chess is not allowed now."
