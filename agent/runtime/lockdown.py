"""The device lockdown's parts the daemon runs (issue 18), behind their options so tests and
development mode without USBGuard or udev keep working: the boot check once at start (in a
thread: READY never waits for it), the USB policy through USBGuard (re-applied when the
policy's `usb` table changes), the device watch. Started by Services; failures are logged
and the rest of the agent runs on (USBGuard's own RuleFile, written by the last apply,
still decides devices).

USBGuard is reached in the background, never before READY: both start at boot and its
D-Bus bridge may answer long after the agent (on an emulated A72, a minute). Until it does
its RuleFile decides alone; the agent keeps trying (RETRY_FIRST doubling to RETRY_MAX), so
provisioning, the guardian's `usb` table and the block events do not depend on which of
the two came up first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent.bus.background import BackgroundTasks
from agent.lockdown.audit import boot_tamper
from agent.lockdown.model import Finding, Runtime
from agent.lockdown.rootdir import RootDir, running_kernel
from agent.os.devicewatch import DeviceWatch
from agent.os.usbguard import UsbGuard, UsbGuardError
from agent.runtime.agent import Agent
from agent.runtime.config import DaemonConfig
from agent.store.events import Event, EventKind, JSONScalar

log = logging.getLogger("minormode.lockdown")

RETRY_FIRST, RETRY_MAX = 2.0, 60.0  # seconds between attempts to reach USBGuard


def check_boot(agent: Agent, clock: Callable[[], datetime], root: Path = Path("/"),
               runtime: Runtime | None = None) -> int:
    """Boot files and the kernel command line (`runtime`: the running kernel's) against the
    image's manifest: one BOOT_TAMPER event naming what differs. Detection, not prevention
    (no secure boot). Returns how many findings."""
    return report_boot(agent, clock, boot_tamper(RootDir(root), runtime or running_kernel()))


def report_boot(agent: Agent, clock: Callable[[], datetime], findings: tuple[Finding, ...]) -> int:
    """`check_boot`'s second half, on the agent's thread (the event sink is not shared)."""
    if findings:
        agent.events.record(Event(EventKind.BOOT_TAMPER, clock(), {
            "ids": list[JSONScalar](f.id for f in findings[:20]),
            "findings": list[JSONScalar](f.what[:160] for f in findings[:20])}))
        log.warning("boot not as shipped: %s", "; ".join(f.what for f in findings))
    return len(findings)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reaching USBGuard failed", exc_info=task.exception())


class DeviceLockdown:
    def __init__(self, agent: Agent, config: DaemonConfig, clock: Callable[[], datetime], *,
                 boot_root: Path = Path("/"), kernel: Callable[[], Runtime] = running_kernel) -> None:
        self.agent, self.config, self.clock = agent, config, clock
        self.boot_root, self.kernel = boot_root, kernel  # what the boot check reads
        self.usb: UsbGuard | None = None
        self.usb_connected = asyncio.Event()  # set once USBGuard answered and the policy is applied
        self._reaching: asyncio.Future[None] | None = None
        self.devices: DeviceWatch | None = None
        self._background = BackgroundTasks(log, "applying the USB policy")
        self._boot_check = BackgroundTasks(log, "the boot check")

    async def start(self, bus_address: str | None) -> None:
        config, agent = self.config, self.agent
        if config.boot_check:
            self._boot_check.spawn(self._check_boot())
        if config.usbguard and bus_address == "none":
            log.error("--usbguard needs D-Bus (--bus-address none given): USB policy not applied")
        elif config.usbguard:
            self._reaching = asyncio.ensure_future(self._reach_usbguard(bus_address))
            self._reaching.add_done_callback(_log_failure)
        if config.watch_devices:
            devices = DeviceWatch(agent.events, self.clock)
            try:
                devices.start()
                self.devices = devices
            except (ImportError, OSError) as exc:  # no pyudev, no libudev, no netlink
                log.error("device watch not started: %s", exc)

    async def _check_boot(self) -> None:
        """In a thread, after the start: hashing the kernel, initramfs and firmware (~60 MB)
        took 24 s of an emulated Pi 3B's 35 s start (its SD card is slow to read), and a
        finding only becomes an event, so READY and enforcement never wait for it."""
        began = time.monotonic()
        findings = await asyncio.to_thread(lambda: boot_tamper(RootDir(self.boot_root), self.kernel()))
        report_boot(self.agent, self.clock, findings)
        log.info("boot files checked in %.1f s: %s", time.monotonic() - began,
                 f"{len(findings)} finding(s)" if findings else "as shipped")

    async def _reach_usbguard(self, bus_address: str | None) -> None:
        delay, said = RETRY_FIRST, False
        while True:
            usb = UsbGuard(self.agent.events, self.clock, self.config.state, bus_address)
            try:
                await usb.start(self.agent.policy.usb)
            except asyncio.CancelledError:  # the agent stopping meanwhile
                await usb.stop()
                raise
            except UsbGuardError as exc:
                await usb.stop()
                if not said:  # once: a device without USBGuard would fill the log otherwise
                    log.error("USB policy not applied yet (USBGuard's rule file decides meanwhile): "
                              "%s; retrying every %g s at most", exc, RETRY_MAX)
                    said = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.usb = usb
            self.agent.subscribe(lambda _d, _prev: self._follow())
            self.usb_connected.set()
            if said:
                log.info("USBGuard reached: USB policy applied")
            self._follow()  # a policy that arrived while connecting
            return

    def _follow(self) -> None:
        """A new policy: re-apply when its `usb` table differs from the one in force."""
        usb = self.usb
        if usb is not None and self.agent.policy.usb != usb.rules:
            self._background.spawn(usb.apply(self.agent.policy.usb))

    async def stop(self) -> None:
        for task in list(self._boot_check.tasks):  # its thread ends by itself; nothing is reported
            task.cancel()
        if self._reaching is not None and not self._reaching.done():
            self._reaching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaching
        if self.devices is not None:
            self.devices.stop()
        if self.usb is not None:
            await self.usb.stop()
