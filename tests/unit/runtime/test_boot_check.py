"""The boot check the agent runs once at start (--boot-check): boot files and the kernel
command line against the image's manifest; what differs is one boot_tamper event."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from support.runtime import agent_on
from support.scenario import iso

from agent.dev.clock import ManualClock
from agent.lockdown.model import Runtime
from agent.runtime.config import parse_config
from agent.runtime.lockdown import DeviceLockdown, check_boot
from agent.store.events import EventKind
from agent.store.state import StateStore

REPO = Path(__file__).resolve().parents[3]
CMDLINE = "console=tty1 root=LABEL=minormode-root rootwait quiet"


def _root(tmp: Path) -> Path:
    root = tmp / "root"
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text(CMDLINE + "\n")
    (boot / "config.txt").write_text("arm_64bit=1\n")
    subprocess.run([sys.executable, "-m", "agent.lockdown.manifest", "--boot-files", str(boot),
                    "--out", str(root / "usr/lib/minormode/boot-manifest.json")], check=True, cwd=REPO)
    return root


def _tampers(tmp: Path, root: Path, cmdline: str) -> list[dict[str, object]]:
    store = StateStore(tmp / "state.sqlite")
    agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")))
    check_boot(agent, agent.now, root, Runtime(sysrq="0", cmdline=cmdline))
    out = [dict(e.data) for e in store.events(EventKind.BOOT_TAMPER)]
    store.close()
    return out


def test_a_boot_as_shipped_is_no_event(tmp_path: Path) -> None:
    assert _tampers(tmp_path, _root(tmp_path), CMDLINE + " firmware=added") == []


def test_an_edited_boot_file_and_a_shell_on_the_command_line_are_one_event(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "boot/firmware/config.txt").write_text("arm_64bit=1\nenable_uart=1\n")
    [event] = _tampers(tmp_path, root, CMDLINE + " init=/bin/sh")
    assert event["ids"] == ["boot.file:config.txt", "boot.running-cmdline:init=/bin/sh"]
    assert "config.txt differs" in str(event["findings"])


def test_a_missing_manifest_is_tamper(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "usr/lib/minormode/boot-manifest.json").unlink()
    [event] = _tampers(tmp_path, root, CMDLINE)
    assert "boot.manifest" in event["ids"]  # type: ignore[operator]


async def test_the_daemon_checks_in_a_thread_and_does_not_wait_for_it(tmp_path: Path) -> None:
    """The agent's start goes on while the boot files are read (24 s of an emulated Pi 3B's
    35 s start was this hashing); the finding is recorded when the check ends."""
    root = _root(tmp_path)
    (root / "boot/firmware/config.txt").write_text("arm_64bit=1\nenable_uart=1\n")
    store = StateStore(tmp_path / "state.sqlite")
    agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")))
    reading = threading.Event()

    def kernel() -> Runtime:  # the check's thread waits here until the test lets it go on
        assert reading.wait(30)
        return Runtime(sysrq="0", cmdline=CMDLINE)

    lockdown = DeviceLockdown(agent, replace(parse_config([]), boot_check=True), agent.now,
                              boot_root=root, kernel=kernel)
    await lockdown.start("none")  # returns with the check still under way
    assert list(store.events(EventKind.BOOT_TAMPER)) == []
    reading.set()
    await asyncio.gather(*lockdown._boot_check.tasks)
    [event] = [dict(e.data) for e in store.events(EventKind.BOOT_TAMPER)]
    assert event["ids"] == ["boot.file:config.txt"]
    await lockdown.stop()
    store.close()
