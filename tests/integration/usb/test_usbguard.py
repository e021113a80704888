"""The USB layer against a real usbguard-daemon (umockdev test beds) through usbguard-dbus
on a private bus: each bed allowed or blocked as the policy says, a policy change
re-applies, composites are judged by all their interfaces, every block is an event.
Block latency and event arrival are measured and printed (tests/bench/RESULTS.md), never
asserted on time."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from support import usbbeds as beds
from support.runtime import agent_on
from support.scenario import iso, policy
from support.usbguardd import UsbGuardRig, start_usbguard

from agent.core.usb import DeviceMatch, UsbClass, UsbRules, rule_set
from agent.dev.clock import ManualClock
from agent.dev.devbus import start_bus
from agent.os.usbguard import UsbGuard
from agent.runtime.config import DaemonConfig
from agent.runtime.lockdown import DeviceLockdown
from agent.store.events import Event, EventKind, MemoryEventSink
from agent.store.state import StateStore

pytestmark = [pytest.mark.root, pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("usbguard-daemon") is None or shutil.which("umockdev-wrapper") is None,
                                 reason="needs Debian's usbguard and umockdev (config/deps/apt-usb.txt)")]

BASELINE = "\n".join(rule_set((), UsbRules())) + "\n"  # what the image ships before first boot


class Timed(MemoryEventSink):
    """Events with the wall time each arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    def record(self, event: Event) -> None:
        self.arrived.append(time.time())
        super().record(event)


async def wait_for(sink: Timed, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sink.events) < count:
        assert time.monotonic() < deadline, f"{count} events expected, got {[e.data for e in sink.events]}"
        await asyncio.sleep(0.005)


async def plug(rig: UsbGuardRig, sink: Timed, bed: beds.Bed) -> Event:
    """Plug one bed (the daemon reads one inotify event at a time: never two at once) and
    return the event it caused."""
    n = len(sink.events)
    rig.plug(bed)
    await wait_for(sink, n + 1)
    event = sink.events[n]
    assert event.data["id"] == bed.id, event
    return event


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[UsbGuardRig]:
    r = start_usbguard(tmp_path / "usbguard", present=(beds.TOUCHSCREEN, beds.BUILTIN), rules=BASELINE)
    yield r
    r.stop()


async def layer(rig: UsbGuardRig, rules: UsbRules) -> tuple[UsbGuard, Timed]:
    sink = Timed()
    usb = UsbGuard(sink, lambda: datetime.now(UTC), rig.directory, rig.bus.address)
    await usb.start(rules)
    return usb, sink


async def targets(usb: UsbGuard) -> dict[str, str]:
    return {d.name: target for _, target, d in await usb.devices()}


@pytest.mark.asyncio
async def test_default_policy_allows_built_ins_and_keyboards_and_blocks_the_rest(rig: UsbGuardRig) -> None:
    usb, sink = await layer(rig, UsbRules())
    try:
        # provisioning: what was present at the first start is allowed from now on, the
        # built-in vendor-class Ethernet included (the baseline alone blocked it)
        assert {d.name for d in usb.provisioned} == {"xHCI Host Controller", "Touchscreen", "Built-in Ethernet"}
        assert (await targets(usb))["Built-in Ethernet"] == "allow"
        verdicts = {}
        for bed in (beds.KEYBOARD, beds.STICK, beds.ETHERNET, beds.RNDIS, beds.SERIAL, beds.COMBO, beds.WIFI):
            event = await plug(rig, sink, bed)
            verdicts[bed.name] = event.kind
        assert verdicts == {
            "Keyboard": EventKind.USB_ALLOWED,  # allowed and recorded
            "Cruzer": EventKind.USB_BLOCKED, "USB Ethernet": EventKind.USB_BLOCKED,
            "Phone tethering": EventKind.USB_BLOCKED, "USB serial": EventKind.USB_BLOCKED,
            "Keyboard+Storage": EventKind.USB_BLOCKED, "Wi-Fi dongle": EventKind.USB_BLOCKED,
        }
        now = await targets(usb)
        assert now["Keyboard"] == "allow" and now["Keyboard+Storage"] == "block" and now["Cruzer"] == "block"
        combo = next(e for e in sink.events if e.data["id"] == beds.COMBO.id)
        assert combo.data["classes"] == ["hid", "storage"]
        # the rules are USBGuard's RuleFile: the next boot is decided before the agent starts
        assert rig.rule_file.read_text().splitlines() == list(rule_set(usb.provisioned, UsbRules()))
    finally:
        await usb.stop()


@pytest.mark.asyncio
async def test_a_policy_change_re_applies_to_devices_plugged_in(rig: UsbGuardRig) -> None:
    usb, sink = await layer(rig, UsbRules())
    try:
        await plug(rig, sink, beds.STICK)
        await plug(rig, sink, beds.SERIAL)
        await usb.apply(UsbRules(allow_classes=frozenset({UsbClass.STORAGE}),
                                 allow_devices=(DeviceMatch("2341", "0043", "S1"),)))
        now = await targets(usb)
        assert now["Cruzer"] == "allow" and now["USB serial"] == "allow"
        await plug(rig, sink, beds.ETHERNET)  # a class still not allowed
        assert (await targets(usb))["USB Ethernet"] == "block"
        # the daemon's own rules agree (not only the re-decision): another stick plugged in
        # now is decided by USBGuard alone, and let in
        assert (await plug(rig, sink, beds.STICK2)).kind is EventKind.USB_ALLOWED
        # the guardian takes it back: blocked again, and that block is an event too
        n = len(sink.events)
        await usb.apply(UsbRules())
        await wait_for(sink, n + 3)
        assert {(e.kind, e.data["id"]) for e in sink.events[n:]} == {
            (EventKind.USB_BLOCKED, beds.STICK.id), (EventKind.USB_BLOCKED, beds.STICK2.id),
            (EventKind.USB_BLOCKED, beds.SERIAL.id)}
        assert (await targets(usb))["Cruzer"] == "block"
    finally:
        await usb.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize(("operator", "combo_allowed"), [
    ("one-of", True), ("all-of", True), ("equals", False), ("match-all", False)])
async def test_only_all_interface_operators_keep_a_keyboard_storage_composite_out(
        tmp_path: Path, operator: str, combo_allowed: bool) -> None:
    """Why the generator writes match-all/equals: with one-of or all-of a keyboard interface
    is enough to let a keyboard-plus-storage stick in (measured on the real daemon)."""
    rule = f"allow with-interface {{ 09:00:00 }}\nallow with-interface {operator} {{ 03:01:01 }}\n"
    r = start_usbguard(tmp_path / "usbguard", rules=rule)
    try:
        r.plug(beds.COMBO)
        deadline = time.monotonic() + 5
        while not r.decisions(beds.COMBO):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert r.decisions(beds.COMBO)[-1][1] == ("allow" if combo_allowed else "block")
    finally:
        r.stop()


@pytest.mark.asyncio
async def test_block_latency_and_event_arrival(rig: UsbGuardRig) -> None:
    """Goals: blocked < 100 ms after plug-in, the journal event < 1 s. Printed, not asserted."""
    usb, sink = await layer(rig, UsbRules())
    blocks, arrivals = [], []
    try:
        for bed in (beds.STICK, beds.ETHERNET, beds.RNDIS, beds.SERIAL, beds.COMBO, beds.WIFI):
            await plug(rig, sink, bed)
            plugged = rig.plugged_at[bed.name]
            deadline = time.monotonic() + 5  # the daemon's log line may trail its signal
            while not any(target == "block" for _, target in rig.decisions(bed)):
                assert time.monotonic() < deadline, rig.decisions(bed)
                await asyncio.sleep(0.01)
            blocked_at = next(t for t, target in rig.decisions(bed) if target == "block")
            blocks.append((blocked_at - plugged) * 1000)
            arrivals.append((sink.arrived[-1] - plugged) * 1000)
    finally:
        await usb.stop()
    print(f"\nUSB block after plug-in: median {statistics.median(blocks):.0f} ms, max {max(blocks):.0f} ms "
          f"(goal < 100); usb_blocked event: median {statistics.median(arrivals):.0f} ms, "
          f"max {max(arrivals):.0f} ms (goal < 1000); n={len(blocks)}")
    assert all(b >= 0 for b in blocks)


@pytest.mark.asyncio
async def test_the_daemon_wiring_follows_the_guardians_policy(rig: UsbGuardRig, tmp_path: Path) -> None:
    """agent/runtime/lockdown.py as the daemon runs it (--usbguard): blocks reach the
    agent's journal store; a policy whose usb table changes re-applies on the next decision."""
    store = StateStore(tmp_path / "state.sqlite")
    agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")))
    lockdown = DeviceLockdown(agent, DaemonConfig(state=rig.directory, usbguard=True), agent.now)
    await lockdown.start(rig.bus.address)
    try:
        await asyncio.wait_for(lockdown.usb_connected.wait(), 30)
        assert lockdown.usb is not None
        rig.plug(beds.STICK)
        deadline = time.monotonic() + 5
        while not store.events(EventKind.USB_BLOCKED):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert store.events(EventKind.USB_BLOCKED)[0].data["id"] == beds.STICK.id
        assert agent.apply_policy(policy(version=2, usb={"allow_classes": ["storage"]}), "guardian").ok
        agent.tick()
        deadline = time.monotonic() + 5
        while (await targets(lockdown.usb))["Cruzer"] != "allow":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await lockdown.stop()
        store.close()


@pytest.mark.asyncio
async def test_a_device_kept_out_before_the_agent_listened_is_recorded(rig: UsbGuardRig) -> None:
    """A stick plugged in while the agent was not listening (stopped, or USBGuard not yet
    reachable): USBGuard's rule file keeps it out alone, and when the agent connects the
    guardian hears of it ("present"); the built-in devices stay news to no one."""
    usb, _ = await layer(rig, UsbRules())  # the first start: the built-ins provisioned
    await usb.stop()
    rig.plug(beds.STICK)
    deadline = time.monotonic() + 10
    while not rig.decisions(beds.STICK):
        assert time.monotonic() < deadline, "usbguard-daemon never decided the stick"
        await asyncio.sleep(0.02)
    assert rig.decisions(beds.STICK)[-1][1] == "block"
    again, sink = await layer(rig, UsbRules())
    try:
        assert [(e.kind, e.data["id"], e.data["reason"]) for e in sink.events] == [
            (EventKind.USB_BLOCKED, beds.STICK.id, "present")]
    finally:
        await again.stop()


@pytest.mark.asyncio
async def test_usbguard_coming_up_after_the_agent_is_reached(tmp_path: Path) -> None:
    """At boot USBGuard's D-Bus bridge may answer long after the agent (a minute on an
    emulated A72): the agent starts without waiting for it (start returns at once, nothing
    applied), keeps trying, and once USBGuard is there provisions, applies and records."""
    bus = start_bus()  # no usbguard-dbus on it yet
    store = StateStore(tmp_path / "state.sqlite")
    rig = None
    lockdown = None
    try:
        agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")))
        lockdown = DeviceLockdown(agent, DaemonConfig(state=tmp_path / "usbguard", usbguard=True), agent.now)
        await asyncio.wait_for(lockdown.start(bus.address), 5)  # READY is not held up
        assert lockdown.usb is None and not lockdown.usb_connected.is_set()
        rig = start_usbguard(tmp_path / "usbguard", present=(beds.TOUCHSCREEN, beds.BUILTIN), rules=BASELINE,
                             bus=bus)
        await asyncio.wait_for(lockdown.usb_connected.wait(), 60)
        assert lockdown.usb is not None
        rig.plug(beds.STICK)
        deadline = time.monotonic() + 5
        while not store.events(EventKind.USB_BLOCKED):
            assert time.monotonic() < deadline, "the stick plugged after the late connection was not recorded"
            await asyncio.sleep(0.01)
    finally:
        if lockdown is not None:
            await lockdown.stop()
        if rig is not None:
            rig.stop()
        else:
            bus.stop()
        store.close()


@pytest.mark.asyncio
async def test_without_usbguard_the_wiring_logs_and_the_agent_runs_on(tmp_path: Path) -> None:
    bus = start_bus()  # no usbguard-dbus on it
    store = StateStore(tmp_path / "state.sqlite")
    try:
        agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")))
        lockdown = DeviceLockdown(agent, DaemonConfig(state=tmp_path, usbguard=True), agent.now)
        await asyncio.wait_for(lockdown.start(bus.address), 5)
        assert lockdown.usb is None
        agent.tick()  # the agent decides on without it
        assert agent.decision is not None
        await lockdown.stop()  # the retrying stops with the agent
        assert lockdown.usb is None
    finally:
        store.close()
        bus.stop()


@pytest.mark.asyncio
async def test_a_forged_device_signal_is_ignored(rig: UsbGuardRig) -> None:
    """Any peer may send a signal to the agent's connection; only usbguard-dbus's count."""
    usb, sink = await layer(rig, UsbRules())
    try:
        assert usb.bus is not None
        forged = subprocess.run(
            ["dbus-send", f"--bus={rig.bus.address}", "--type=signal", f"--dest={usb.bus.unique_name}",
             "/org/usbguard1/Devices", "org.usbguard.Devices1.DevicePolicyApplied", "uint32:99", "uint32:1",
             "string:block id dead:beef", "uint32:0",
             "dict:string:string:id,dead:beef,name,Forged,with-interface,08:06:50"],
            capture_output=True, text=True, check=False)
        assert forged.returncode == 0, forged.stderr
        await plug(rig, sink, beds.STICK)  # a genuine one after it: the forged one came first
        assert [e.data["id"] for e in sink.events if e.kind is EventKind.USB_BLOCKED] == [beds.STICK.id]
    finally:
        await usb.stop()
