"""The daemon as a process: READY to systemd, SIGHUP reloads, a bad policy changes nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.events import EventKind
from agent.store.state import StateStore

ROOT = Path(__file__).parents[3]
GOOD = (ROOT / "config" / "policies" / "8-12.toml").read_text()


class Daemon:
    def __init__(self, tmp: Path, policy_text: str = GOOD, state: Path | None = None) -> None:
        self.tmp = tmp
        self.policy = tmp / "policy.toml"
        self.policy.write_text(policy_text)
        self.notify_path = tmp / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(20)
        self.log = tmp / "agent.log"
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path), WATCHDOG_USEC="400000")
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.daemon", "--dev", "--speed", "60", "--policy",
                 str(self.policy), "--state", str(state or tmp / "state")],
                env=env, stderr=log, cwd=ROOT,
            )
        env["WATCHDOG_PID"] = str(self.proc.pid)

    def expect_notify(self, wanted: str) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = self.notify.recv(4096).decode()
            if wanted in message:
                return message
        raise AssertionError(f"no {wanted} from the agent")

    def wait_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the log:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self.notify.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def test_ready_watchdog_and_clean_stop(daemon: Daemon) -> None:
    assert "READY=1" in daemon.expect_notify("READY=1")
    daemon.expect_notify("WATCHDOG=1")
    assert daemon.stop() == 0


def test_bad_policy_keeps_the_last_good_one(daemon: Daemon) -> None:
    daemon.expect_notify("READY=1")
    daemon.policy.write_text(GOOD.replace("daily_minutes = 60", "daily_minutes = -60"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("policy rejected, keeping version 1")
    daemon.policy.write_text(GOOD.replace("version = 1 ", "version = 3 "))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("policy version 3 loaded")
    daemon.policy.write_text(GOOD.replace("version = 1 ", "version = 2 "))  # a replayed old policy
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("version 2 is older than the loaded version 3")
    assert daemon.proc.poll() is None, "the agent died on a bad policy"
    assert daemon.stop() == 0
    store = StateStore(daemon.tmp / "state" / "state.sqlite")
    saved = store.last_policy()
    assert saved is not None and saved[0] == 3
    # Events about the child go to the sealed journal; before pairing, root's local key opens it.
    read = subprocess.run(
        [sys.executable, "-m", "agent.cli", "journal", "read", "--state", str(daemon.tmp / "state"),
         "--key", str(daemon.tmp / "state" / "journal-local.key")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    kinds = [json.loads(line)["kind"] for line in read.stdout.splitlines()]
    assert kinds.count(EventKind.POLICY_REJECTED.value) == 2
    assert store.events() == [], "events about the child must not land in the plain state file"


def reload_messages(daemon: Daemon) -> list[str]:
    """SIGHUP, then the notify datagrams up to the READY=1 that ends the reload."""
    daemon.proc.send_signal(signal.SIGHUP)
    seen = [daemon.expect_notify("RELOADING=1")]
    while "READY=1" not in seen[-1].split("\n"):
        seen.append(daemon.notify.recv(4096).decode())
    return seen


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.split("\n") if line)


def test_a_reload_tells_systemd_its_outcome(daemon: Daemon) -> None:
    """The notify protocol around SIGHUP, as systemd reads it from NOTIFY_SOCKET: RELOADING=1
    with this boot's monotonic time, then READY=1 with a STATUS= naming a rejected policy's
    error (and ERRNO=) or the version now in force; STATUS= then follows the decisions."""
    daemon.expect_notify("READY=1")
    daemon.policy.write_text(GOOD.replace("daily_minutes = 60", "daily_minutes = -60"))
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    seen = reload_messages(daemon)
    start, done = fields(seen[0]), fields(seen[-1])
    assert before <= int(start["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert done["STATUS"].startswith("policy rejected, keeping version 1: "), done
    assert "daily_minutes" in done["STATUS"] and "\n" not in done["STATUS"]
    assert done["ERRNO"] == "22"
    daemon.policy.write_text(GOOD.replace("version = 1 ", "version = 3 "))
    done = fields(reload_messages(daemon)[-1])
    assert done["STATUS"] == "enforcing policy version 3: reloaded" and "ERRNO" not in done
    status = fields(daemon.expect_notify("STATUS=enforcing policy version 3: "))["STATUS"]
    assert status.split(": ", 1)[1].startswith(("locked", "unlocked")), status
    assert daemon.stop() == 0


def test_the_start_tells_systemd_each_phase_and_extends_its_deadline(daemon: Daemon) -> None:
    """Before READY=1 every message names the phase under way and asks for more time
    (EXTEND_TIMEOUT_USEC=, so a slow card or an emulated board is not killed at
    TimeoutStartSec while it makes progress, and a hung phase still is); the log says where
    the start's time went."""
    before: list[dict[str, str]] = []
    while "READY" not in (message := fields(daemon.notify.recv(4096).decode())):
        before.append(message)
    starting = [m for m in before if m.get("STATUS", "").startswith("starting: ")]
    phases = [m["STATUS"].removeprefix("starting: ") for m in starting]
    assert before[0] is starting[0] and phases[:3] == ["state", "policy", "session"], before
    assert "payments" in phases and len(set(phases)) == len(phases), phases
    # at least a minute a phase (an emulated Pi 3B's exec gate start takes 14 s when idle)
    assert all(int(m["EXTEND_TIMEOUT_USEC"]) >= 60_000_000 for m in starting), starting
    # the first READY=1 is the agent's (the development bus's dbus-daemon sent one before),
    # with the first decision's line (a bare "enforcing policy version 1" before)
    assert message.get("STATUS", "").startswith(("enforcing policy version 1: locked",
                                                 "enforcing policy version 1: unlocked")), message
    daemon.wait_log("started in ")
    line = next(x for x in daemon.log.read_text().splitlines() if "started in " in x)
    assert all(f"{phase} " in line for phase in phases), line
    assert daemon.stop() == 0


def test_starts_on_the_last_good_policy_when_the_file_is_broken(tmp_path: Path) -> None:
    first = Daemon(tmp_path)
    first.expect_notify("READY=1")
    assert first.stop() == 0
    second_dir = tmp_path / "again"
    second_dir.mkdir()
    second = Daemon(second_dir, "this is not toml = =", state=tmp_path / "state")
    try:
        second.expect_notify("READY=1")
        second.wait_log("policy rejected, keeping version 1")
        second.wait_log("running with policy version 1 (last good)")
    finally:
        assert second.stop() == 0


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "agent.daemon", "--speed", "-1"], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert "--speed -1" in proc.stderr


def _damage(path: Path) -> None:
    """What a power cut mid-write or a failing card leaves: the header and pages garbled."""
    data = bytearray(path.read_bytes())
    data[0:100] = b"\xde\xad" * 50
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def test_damaged_state_files_are_set_aside_and_the_agent_starts_on_the_last_good_policy(
    tmp_path: Path,
) -> None:
    """Every stored file the agent reads at start, damaged at once: each is set aside
    (`<name>.damaged-1`), the agent starts on the last good policy (its kept copy; the
    policy file is broken too) instead of stopping, and the journal records what it did."""
    first = Daemon(tmp_path, GOOD.replace("version = 1 ", "version = 3 "))
    first.expect_notify("READY=1")
    assert first.stop() == 0
    state = tmp_path / "state"
    stores = sorted(p for p in state.glob("*.sqlite"))
    assert {p.name for p in stores} >= {"state.sqlite", "journal.sqlite", "ledger.sqlite"}
    for store in stores:
        _damage(store)
    (state / "journal-local.key").write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n")
    again = tmp_path / "again"
    again.mkdir()
    second = Daemon(again, "this is not toml = =", state=state)
    try:
        second.expect_notify("READY=1")
        second.wait_log("running with policy version 3 (last good)")
        assert second.proc.poll() is None
    finally:
        assert second.stop() == 0
    for store in stores:
        assert store.with_name(store.name + ".damaged-1").exists(), store.name
    assert (state / "journal-local.key.damaged-1").exists()
    read = subprocess.run(
        [sys.executable, "-m", "agent.cli", "journal", "read", "--state", str(state),
         "--key", str(state / "journal-local.key")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    [start] = [e for e in map(json.loads, read.stdout.splitlines()) if e["kind"] == "agent_start"]
    assert start["data"]["policy_version"] == 3 and "kept copy" in start["data"]["policy_source"]
    named = " ".join(start["data"]["set_aside"])
    assert all(f"{store.name} -> {store.name}.damaged-1" in named for store in stores)
    assert "journal-local.key -> journal-local.key.damaged-1" in named
