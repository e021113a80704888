"""The pyudev adapter on a umockdev test bed: a new network interface, a block device and
an input device each become the right journal event (and a new interface reaches the
wiring's hook). The bed runs in Debian's python3 under umockdev-wrapper (its GObject
introspection and pyudev), with the adapter's own module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.os.devicewatch import device_event
from agent.store.events import EventKind

REPO = Path(__file__).resolve().parents[3]
BED = Path(__file__).with_name("devicewatch_bed.py")


def _has_bed() -> bool:
    if shutil.which("umockdev-wrapper") is None:
        return False
    probe = subprocess.run(["/usr/bin/python3", "-c", "import pyudev, gi; gi.require_version('UMockdev', '1.0')"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.timeout(60)
@pytest.mark.skipif(not _has_bed(), reason="needs umockdev, gir1.2-umockdev-1.0, python3-pyudev (apt-usb.txt)")
def test_new_interface_block_device_and_keyboard_are_journal_events() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(["umockdev-wrapper", "/usr/bin/python3", str(BED)], capture_output=True, text=True,
                         env=env, timeout=45, check=False)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("done"), out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()[:-1]]
    events, hook = lines[:-1], lines[-1]
    assert events == [
        {"event": "device_added", "kind": "network", "name": "usb0", "bus": "usb", "driver": "cdc_ether",
         "filtered": True},
        {"event": "device_added", "kind": "block", "name": "sdb", "devtype": "disk", "bus": "usb",
         "automount": False},
        {"event": "device_added", "kind": "input", "name": "input9", "keyboard": True, "device": "USB Keyboard"},
    ]
    assert hook == {"interfaces": ["usb0"]}


@pytest.mark.parametrize(("action", "subsystem", "name", "props"), [
    ("remove", "net", "usb0", {}),
    ("add", "net", "lo", {}),
    ("add", "block", "loop3", {"DEVTYPE": "disk"}),
    ("add", "block", "sdb", {}),  # no DEVTYPE: not a disk or partition
    ("add", "input", "event7", {"ID_INPUT_KEYBOARD": "1"}),  # the device's node: its device was the news
    ("add", "sound", "card1", {}),
])
def test_what_is_not_news_is_no_event(action: str, subsystem: str, name: str, props: dict[str, str]) -> None:
    assert device_event(action, subsystem, name, props, datetime.now(UTC)) is None


def test_a_partition_is_news() -> None:
    event = device_event("add", "block", "sdb1", {"DEVTYPE": "partition"}, datetime.now(UTC))
    assert event is not None and event.kind is EventKind.DEVICE_ADDED and event.data["devtype"] == "partition"
