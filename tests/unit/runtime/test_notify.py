"""The STATUS= line and the reload bracket the agent sends systemd (agent/runtime/notify.py),
on a datagram socket standing in for NOTIFY_SOCKET through the real sdnotify sender."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.core.decide import decide
from agent.core.parse import load_policy_file
from agent.core.usage import Usage
from agent.runtime.notify import REFRESH, ServiceNotifier, describe

ROOT = Path(__file__).parents[3]
POLICY = load_policy_file(ROOT / "config" / "policies" / "8-12.toml")
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(5)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def test_describe_says_until_when_in_the_policys_clock() -> None:
    assert describe(decide(POLICY, at("2026-11-23T23:00"), Usage())) == (
        "enforcing policy version 1: locked until 07:00 (curfew, outside_window)")
    assert describe(decide(POLICY, at("2026-11-23T17:00"), Usage())) == (
        "enforcing policy version 1: unlocked, 60 min left")


def test_status_is_sent_on_change_and_refreshed(systemd: socket.socket) -> None:
    clock = [100.0]
    notifier = ServiceNotifier(monotonic=lambda: clock[0])
    locked = decide(POLICY, at("2026-11-23T23:00"), Usage())
    notifier.decided(locked, None)
    notifier.decided(locked, locked)  # the same text: nothing new
    assert received(systemd) == ["STATUS=enforcing policy version 1: locked until 07:00 (curfew, outside_window)"]
    clock[0] += REFRESH
    notifier.decided(locked, locked)
    assert len(received(systemd)) == 1  # refreshed after REFRESH seconds
    notifier.decided(decide(POLICY, at("2026-11-23T17:00"), Usage()), locked)
    assert received(systemd) == ["STATUS=enforcing policy version 1: unlocked, 60 min left"]


def test_a_rejected_reload_names_its_first_problem_on_one_line(systemd: socket.socket) -> None:
    notifier = ServiceNotifier()
    assert notifier.reload(lambda: (False, "p.toml: budget.mon: -60: below 0\nand more", 4)) is False
    start, done = received(systemd)
    assert start.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert done.split("\n") == ["READY=1", "STATUS=policy rejected, keeping version 4: p.toml: budget.mon: "
                                "-60: below 0", "ERRNO=22"]
    assert notifier.reload(lambda: (True, "", 5)) is True
    assert received(systemd)[-1] == "READY=1\nSTATUS=enforcing policy version 5: reloaded"
