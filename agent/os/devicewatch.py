"""What USBGuard does not see, watched with pyudev: new network interfaces, block devices
and input devices (item 2 of issue 18). One event each to the journal (DEVICE_ADDED).

- Network: the DNS filter's nftables rules match the child's traffic by socket owner
  (`meta skuid`, agent/filter/nft.py) in the output hook, not by interface, so an interface
  that appears later (a USB Ethernet adapter the guardian allowed, tethering) is covered the
  moment it exists; the event tells the guardian it appeared, and `on_interface` lets the
  wiring react further.
- Block devices: USBGuard keeps mass storage out unless the guardian allows it; one the
  guardian allowed is mounted, if the desktop's udisks2 mounts it, only noexec, nosuid,
  nodev (config/udisks2/mount_options.conf, which the image installs: `exec` cannot even be
  asked for), and the exec gate denies the child anything under /media. Recorded here.
- Input: a new keyboard (ID_INPUT_KEYBOARD) is logged; USBGuard has already let it in.

pyudev is imported when the watch starts, so importing this module costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from agent.store.events import Event, EventKind, EventSink, JSONScalar

log = logging.getLogger("minormode.devices")

WATCHED = ("net", "block", "input")


def device_event(action: str, subsystem: str, sys_name: str, properties: Mapping[str, str],
                 at: datetime) -> Event | None:
    """The journal event for one uevent, or None for what is not news (a removal, an input
    node that is not a device's own, a virtual interface such as lo)."""
    if action != "add":
        return None
    data: dict[str, JSONScalar] = {"name": sys_name[:64]}
    if subsystem == "net":
        if sys_name == "lo":
            return None
        data |= {"kind": "network", "bus": properties.get("ID_BUS", ""),
                 "driver": properties.get("ID_NET_DRIVER", "")[:32], "filtered": True}
    elif subsystem == "block":
        virtual = sys_name.startswith(("loop", "ram", "zram"))
        if properties.get("DEVTYPE") not in ("disk", "partition") or virtual:
            return None
        data |= {"kind": "block", "devtype": properties.get("DEVTYPE", ""),
                 "bus": properties.get("ID_BUS", ""), "automount": False}
    elif subsystem == "input":
        if not sys_name.startswith("input"):  # eventN/mouseN nodes repeat their device's add
            return None
        data |= {"kind": "input", "keyboard": properties.get("ID_INPUT_KEYBOARD") == "1",
                 "device": properties.get("NAME", "").strip('"')[:64]}
    else:
        return None
    return Event(EventKind.DEVICE_ADDED, at, data)


class DeviceWatch:
    def __init__(self, events: EventSink, clock: Callable[[], datetime],
                 on_interface: Callable[[str], None] | None = None) -> None:
        self.events, self.clock, self.on_interface = events, clock, on_interface
        self._monitor: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        import pyudev  # noqa: PLC0415 - only where devices are watched

        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        for subsystem in WATCHED:
            monitor.filter_by(subsystem)
        monitor.start()
        self._monitor = monitor
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(monitor.fileno(), self._ready)

    def stop(self) -> None:
        if self._loop is not None and self._monitor is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None

    def _ready(self) -> None:
        while self._monitor is not None:
            device = self._monitor.poll(timeout=0)
            if device is None:
                return
            event = device_event(device.action or "", device.subsystem or "", device.sys_name,
                                 dict(device.properties), self.clock())
            if event is None:
                continue
            self.events.record(event)
            log.info("device added: %s", dict(event.data))
            if event.data.get("kind") == "network" and self.on_interface is not None:
                self.on_interface(device.sys_name)
