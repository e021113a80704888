"""Boot the image in qemu-system-aarch64 and read its serial console, bounded in time.

The guest prints "@@MM key=value" lines (tests/qemu/guest/run-guest-tests); `boot` returns
them parsed with the whole console log. QEMU is always stopped: it powers itself off
(SuccessAction=/FailureAction= + -no-reboot), and on the deadline it is killed by its PID.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

MARKER = "@@MM "
REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800  # a cold build here: see image-build/README.md
# The whole guest run. On a loaded shared host TCG runs several times slower:
# MINORMODE_QEMU_BOOT_TIMEOUT raises the bound (seconds).
BOOT_TIMEOUT = int(os.environ.get("MINORMODE_QEMU_BOOT_TIMEOUT", "900"))
# MINORMODE_QEMU_BENCH=0: the guest skips its benchmarks (minormode.bench=0 on the kernel
# command line); test_benchmarks_guest_vs_host then skips, saying so.
GUEST_BENCH = os.environ.get("MINORMODE_QEMU_BENCH") != "0"

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

    host_before: str = ""  # the host's load when the boot began (host_load), for a slow boot's why
    host_after: str = ""

    def tail(self, n: int = 60) -> str:
        lines = self.console[-n:]
        if self.host_before or self.host_after:
            lines += ["---- host at the boot's start:", self.host_before,
                      "---- host at its end:", self.host_after]
        return "\n".join(lines)


def host_load() -> str:
    """The host's load average and busiest processes: a TCG guest slows with every process
    beside it (one CI run's raspi3b boot took 6x its usual time and no one could say why)."""
    try:
        busiest = subprocess.run(["ps", "-eo", "pid,pcpu,etimes,args", "--sort=-pcpu"], check=False,
                                 capture_output=True, text=True, timeout=10).stdout.splitlines()[:6]
    except (OSError, subprocess.SubprocessError) as exc:
        busiest = [f"ps: {exc}"]
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}\n" + "\n".join(line[:160] for line in busiest)


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


# The guest's wall clock: today at noon in the family's timezone (04:00 UTC is 12:00 in
# Shanghai), whatever the host's hour. The band's curfew (22:00-06:00) would otherwise
# decide what the guest's checks see (at night only the emergency set resolves).
GUEST_NOON = f"{datetime.now(UTC):%Y-%m-%d}T04:00:00"


def qemu_command(image: Path, kernel: Path, initrd: Path, machine: str = "virt",
                 qmp: Path | None = None, usb_stick: Path | None = None) -> list[str]:
    """The QEMU command line. virt only: `qmp`, a QMP socket to plug devices in while the
    guest runs (`qmp_command`); `usb_stick`, a raw file that becomes a USB stick's medium
    once plugged (`device_add usb-storage,drive=stick`)."""
    if machine == "virt":
        extra = ["-qmp", f"unix:{qmp},server=on,wait=off"] if qmp is not None else []
        if qmp is not None:  # backends for the USB network and serial adapters plugged over QMP:
            # a network hub port with no other port (nothing leaves the guest); a chardev that
            # is open (usb-serial attaches only once its chardev opens, which `null` never does)
            extra += ["-netdev", "hubport,id=usbnet,hubid=0",
                      "-chardev", "file,id=usbserial,path=/dev/null"]
        if usb_stick is not None:
            extra += ["-drive", f"if=none,id=stick,format=raw,readonly=on,file={usb_stick}",
                      "-drive", f"if=none,id=stick2,format=raw,readonly=on,file={usb_stick}"]
        return [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            "-accel", "tcg,thread=multi", "-nic", "none", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-rtc", f"base={GUEST_NOON}",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyAMA0 root=LABEL=minormode-root rootwait panic=-1 "
                       "systemd.show_status=1" + ("" if GUEST_BENCH else " minormode.bench=0"),
            "-drive", f"file={image},format=raw,if=virtio,snapshot=on",
            # the tablet's USB host with a keyboard on it: without a USB bus usbguard-daemon
            # exits at start (nothing to watch) and systemd restarts it in a loop. 8 USB 2
            # ports: the keyboard on 1, what the guest test plugs in later on 2-5 (conftest)
            "-device", "qemu-xhci,id=xhci,p2=8", "-device", "usb-kbd,bus=xhci.0,port=1", *extra,
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


def qmp_command(path: Path, execute: str, arguments: dict[str, object]) -> dict[str, object]:
    """One QMP command on QEMU's socket (after the capabilities handshake); its answer.
    Raises RuntimeError with QEMU's words when it answers an error."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        stream = sock.makefile("rwb")

        def answer() -> dict[str, object]:
            while True:  # asynchronous events ({"event": ...}) come between the answers
                line = stream.readline()
                if not line:
                    raise RuntimeError(f"QMP {execute}: QEMU closed the socket")
                message: dict[str, object] = json.loads(line)
                if "return" in message or "error" in message:
                    return message

        stream.readline()  # the greeting
        for request in ({"execute": "qmp_capabilities"}, {"execute": execute, "arguments": arguments}):
            stream.write(json.dumps(request).encode() + b"\n")
            stream.flush()
            reply = answer()
            if "error" in reply:
                raise RuntimeError(f"QMP {request['execute']}: {reply['error']}")
        return reply


def boot(command: list[str], timeout: float, stop_at: str | None = None,
         on_fact: Callable[[str, str], None] | None = None) -> BootResult:
    """Run QEMU until it exits, `stop_at` appears on the console, or `timeout` seconds pass.
    `on_fact(key, value)` is called for each guest fact as it arrives (the guest can ask the
    host to act, e.g. plug a device in, by printing one)."""
    result = BootResult(host_before=host_load())
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
                if on_fact is not None and MARKER in line:
                    for key, value in parse_facts([line]).items():
                        on_fact(key, value)
                if stop_at is not None and stop_at in line:
                    seen_stop = True
    finally:
        if pending:
            result.console.append(pending.decode(errors="replace"))
        if proc.poll() is None:
            result.host_after = host_load()  # QEMU still running: is it getting the CPU?
            os.kill(proc.pid, signal.SIGKILL)  # QEMU by its PID, never by name
        result.returncode = proc.wait(timeout=30)
        sel.close()
        proc.stdout.close()
    result.seconds = time.monotonic() - start
    result.facts = parse_facts(result.console)
    return result
