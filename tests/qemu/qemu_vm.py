"""Boot the image in qemu-system-aarch64 and read its serial console, bounded in time.

The guest prints "@@MM key=value" lines (tests/qemu/guest/run-guest-tests); `boot` returns
them parsed with the whole console log. QEMU is always stopped: it powers itself off
(SuccessAction=/FailureAction= + -no-reboot), and on the deadline it is killed by its PID.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MARKER = "@@MM "
REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800  # a cold build here: see image-build/README.md
BOOT_TIMEOUT = 900

needs_root_and_qemu = [
    pytest.mark.qemu,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the image build needs root (mmdebstrap, chroot)"),
    pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None,
                       reason="qemu-system-aarch64 missing (scripts/setup installs qemu-system-arm)"),
    pytest.mark.timeout(BUILD_TIMEOUT + BOOT_TIMEOUT + 300),
]


@dataclass
class BootResult:
    console: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    first_fact_at: float | None = None

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.console[-n:])


def parse_facts(lines: list[str]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in lines:
        at = line.find(MARKER)
        if at < 0:
            continue
        key, sep, value = line[at + len(MARKER):].strip().partition("=")
        if sep:
            facts[key] = value
    return facts


def qemu_command(image: Path, kernel: Path, initrd: Path, machine: str = "virt") -> list[str]:
    if machine == "virt":
        return [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            "-accel", "tcg,thread=multi", "-nic", "none", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyAMA0 root=LABEL=minormode-root rootwait panic=-1 "
                       "systemd.show_status=1",
            "-drive", f"file={image},format=raw,if=virtio,snapshot=on",
        ]
    if machine == "raspi3b":
        dtb = image.parent / "bcm2837-rpi-3-b.dtb"
        return [
            "qemu-system-aarch64", "-M", "raspi3b", "-m", "1G", "-accel", "tcg,thread=single",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd), "-dtb", str(dtb),
            "-append", "console=tty1 console=ttyAMA0 root=LABEL=minormode-root rootwait panic=-1",
            "-drive", f"file={image},format=raw,if=sd,snapshot=on",
        ]
    raise ValueError(f"machine {machine!r}: virt or raspi3b")


def boot(command: list[str], timeout: float, stop_at: str | None = None) -> BootResult:
    """Run QEMU until it exits, `stop_at` appears on the console, or `timeout` seconds pass."""
    result = BootResult()
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    seen_stop = False
    try:
        while not seen_stop:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                result.timed_out = True
                break
            if not sel.select(timeout=min(left, 1.0)):
                if proc.poll() is not None:
                    break
                continue
            chunk = proc.stdout.read()
            if not chunk:
                if proc.poll() is not None:
                    break
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r")
                result.console.append(line)
                if MARKER in line and result.first_fact_at is None:
                    result.first_fact_at = time.monotonic() - start
                if stop_at is not None and stop_at in line:
                    seen_stop = True
    finally:
        if pending:
            result.console.append(pending.decode(errors="replace"))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # QEMU by its PID, never by name
        result.returncode = proc.wait(timeout=30)
        sel.close()
        proc.stdout.close()
    result.seconds = time.monotonic() - start
    result.facts = parse_facts(result.console)
    return result
