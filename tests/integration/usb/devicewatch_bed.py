"""Run under `umockdev-wrapper /usr/bin/python3` (Debian's: GObject introspection for
UMockdev, Debian's pyudev): a test bed, the real DeviceWatch on it, devices added through
the bed's uevents; prints each journal event as a JSON line, then "done"."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from agent.os.devicewatch import DeviceWatch  # noqa: E402
from agent.store.events import MemoryEventSink  # noqa: E402

DEVICES = [
    ("net", "usb0", ["INTERFACE", "usb0", "ID_BUS", "usb", "ID_NET_DRIVER", "cdc_ether"]),
    ("block", "sdb", ["DEVTYPE", "disk", "ID_BUS", "usb", "DEVNAME", "/dev/sdb"]),
    ("input", "input9", ["ID_INPUT", "1", "ID_INPUT_KEYBOARD", "1",
                                                           "NAME", '"USB Keyboard"']),
]


async def main() -> None:
    bed = UMockdev.Testbed.new()
    sink = MemoryEventSink()
    interfaces: list[str] = []
    watch = DeviceWatch(sink, lambda: datetime.now(UTC), interfaces.append)
    watch.start()
    for subsystem, name, props in DEVICES:
        bed.add_device(subsystem, name, None, [], props)  # its "add" uevent goes out with it
    deadline = asyncio.get_running_loop().time() + 10
    while len(sink.events) < len(DEVICES) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    watch.stop()
    for event in sink.events:
        print(json.dumps({"event": event.kind.value, **event.data}))
    print(json.dumps({"interfaces": interfaces}))
    print("done")
    sys.stdout.flush()


asyncio.run(main())
