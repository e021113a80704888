"""The USB layer: drives USBGuard (`usbguard-daemon` through `usbguard-dbus`) over D-Bus.

USBGuard decides every USB device in the kernel (authorized or not) from its rule set; this
adapter owns that rule set. At start it reads the devices present at provisioning (the
first start ever: the built-in devices and the touchscreen, saved in the state directory,
then never re-learnt), writes the rules agent/core/usb.py makes from them and the policy's
`usb` table (permanently: USBGuard keeps them in its RuleFile, so the next boot is
decided before the agent starts), and re-decides the devices already plugged in. It follows
DevicePolicyApplied / DevicePolicyChanged / DevicePresenceChanged: every device kept out is
a USB_BLOCKED event, every device let in by a class or the guardian's rule (a keyboard,
a mouse) a USB_ALLOWED event. A new policy re-applies (`apply`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from agent.bus.calls import BUS_NAME, BUS_PATH, add_match, call
from agent.core.usb import (
    DeviceRuleError,
    UsbDevice,
    UsbRules,
    device_from_attributes,
    parse_device_rule,
    provisioned_devices,
    rule_set,
    verdict,
)
from agent.store.events import Event, EventKind, EventSink

log = logging.getLogger("minormode.usb")

NAME = "org.usbguard1"
POLICY_PATH, POLICY_IFACE = "/org/usbguard1/Policy", "org.usbguard.Policy1"
DEVICES_PATH, DEVICES_IFACE = "/org/usbguard1/Devices", "org.usbguard.Devices1"
ALLOW, BLOCK, REJECT = 0, 1, 2  # USBGuard's Rule::Target
TARGET_NAMES = {ALLOW: "allow", BLOCK: "block", REJECT: "reject"}
LAST_RULE = 0xFFFFFFFD  # Rule::LastID: append after the last rule
PRESENCE_REMOVE = 3  # DeviceManager::EventType::Remove
CONNECT_TIMEOUT = 20.0  # seconds for usbguard-dbus to reach the daemon at boot
PROVISIONED_FILE = "usb-provisioned.json"


class UsbGuardError(RuntimeError):
    """USBGuard is not reachable or refused the rule set."""


def load_provisioned(path: Path) -> tuple[UsbDevice, ...] | None:
    """The devices saved at provisioning, or None when never provisioned."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsbGuardError(f"{path}: unreadable ({exc}); remove it to provision again") from exc
    return tuple(UsbDevice(**{**d, "interfaces": tuple(d["interfaces"])}) for d in data["devices"])


def save_provisioned(path: Path, devices: Sequence[UsbDevice]) -> None:
    """Written once, durably (temporary file, fsync, rename)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump({"format": 1, "devices": [asdict(d) for d in devices]}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class UsbGuard:
    def __init__(self, events: EventSink, clock: Callable[[], datetime], state: Path,
                 bus_address: str | None = None) -> None:
        self.events, self.clock, self.bus_address = events, clock, bus_address
        self.provisioned_file = state / PROVISIONED_FILE
        self.provisioned: tuple[UsbDevice, ...] = ()
        self.rules = UsbRules()
        self.bus: MessageBus | None = None
        self._recorded: dict[int, int] = {}  # USBGuard's device id -> the target last recorded
        self._own_rule_ids: frozenset[int] = frozenset()  # our provisioned rules (no event: built-in)
        self._owner: str | None = None  # usbguard-dbus's unique name: signals from anyone else are ignored

    async def start(self, rules: UsbRules) -> None:
        """Connect, provision on the first start, apply `rules`. Raises UsbGuardError."""
        try:
            self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
            self.bus.add_message_handler(self._on_message)
            for member in ("DevicePolicyApplied", "DevicePolicyChanged", "DevicePresenceChanged"):
                await add_match(self.bus, f"type='signal',sender='{NAME}',path='{DEVICES_PATH}',"
                                          f"interface='{DEVICES_IFACE}',member='{member}'")
            await add_match(self.bus, f"type='signal',sender='{BUS_NAME}',member='NameOwnerChanged',"
                                      f"arg0='{NAME}'")
            await self._connected()
            owner = await call(self.bus, BUS_NAME, BUS_PATH, BUS_NAME, "GetNameOwner", "s", [NAME])
            self._owner = str(owner.body[0])
            saved = load_provisioned(self.provisioned_file)
            if saved is None:
                saved = provisioned_devices(d for _, _, d in await self.devices())
                save_provisioned(self.provisioned_file, saved)
                log.info("USB provisioned: %d devices present now allowed from now on", len(saved))
            self.provisioned = saved
            await self.apply(rules)
        except (DBusError, OSError) as exc:
            raise UsbGuardError(f"USBGuard over D-Bus: {exc}") from exc

    async def _connected(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """usbguard-dbus owns its name before it reaches the daemon (both start at boot):
        wait, bounded, until it answers."""
        assert self.bus is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                await call(self.bus, NAME, POLICY_PATH, POLICY_IFACE, "listRules", "s", [""])
                return
            except DBusError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    async def devices(self) -> list[tuple[int, str, UsbDevice]]:
        """Every device USBGuard knows: its id, target word and description."""
        assert self.bus is not None
        reply = await call(self.bus, NAME, DEVICES_PATH, DEVICES_IFACE, "listDevices", "s", ["match"])
        out = []
        for device_id, text in reply.body[0]:
            try:
                target, device = parse_device_rule(text)
            except DeviceRuleError as exc:
                log.warning("USBGuard device %d: %s", device_id, exc)
                continue
            out.append((int(device_id), target, device))
        return out

    async def apply(self, rules: UsbRules) -> None:
        """Make USBGuard's rule set the one for `rules`, then re-decide the devices plugged
        in (USBGuard decides a device when it appears, not when rules change). Old rules go
        first: meanwhile a new device is blocked, never let in."""
        assert self.bus is not None
        wanted = rule_set(self.provisioned, rules)
        reply = await call(self.bus, NAME, POLICY_PATH, POLICY_IFACE, "listRules", "s", [""])
        current = [(int(i), str(t)) for i, t in reply.body[0]]
        ids = [i for i, _ in current]
        if [t for _, t in current] != list(wanted):
            for rule_id in ids:
                await call(self.bus, NAME, POLICY_PATH, POLICY_IFACE, "removeRule", "u", [rule_id])
            ids = []
            for text in wanted:
                r = await call(self.bus, NAME, POLICY_PATH, POLICY_IFACE, "appendRule", "sub",
                               [text, LAST_RULE, False])  # not temporary: kept in the RuleFile
                ids.append(int(r.body[0]))
            log.info("USB rules applied: %d", len(wanted))
        self._own_rule_ids = frozenset(ids[:sum(1 for d in self.provisioned if d.interfaces)])
        self.rules = rules
        for device_id, target, device in await self.devices():
            decided = verdict(device, self.provisioned, rules)
            want = ALLOW if decided.allowed else BLOCK
            if (target == "allow") != decided.allowed:
                await call(self.bus, NAME, DEVICES_PATH, DEVICES_IFACE, "applyDevicePolicy", "uub",
                           [device_id, want, False])
                self._record(device_id, want, device, "policy_changed")
            elif not decided.allowed and device_id not in self._recorded:
                # kept out before the agent listened (plugged in before it started, or while
                # USBGuard was not reachable yet): the guardian hears of it now
                self._record(device_id, BLOCK, device, "present")

    # ------------------------------------------------------------------ signals
    def _on_message(self, message: Message) -> bool:
        """USBGuard's device signals, from the name's owner only: any peer may send a signal
        to this connection (the child could forge "blocked" events otherwise)."""
        if message.message_type is not MessageType.SIGNAL:
            return False
        if (message.sender == BUS_NAME and message.member == "NameOwnerChanged"
                and message.body and message.body[0] == NAME):
            self._owner = str(message.body[2]) or None  # usbguard-dbus restarted (or gone)
            return False
        if (message.interface != DEVICES_IFACE or message.path != DEVICES_PATH
                or message.sender is None or message.sender != self._owner):
            return False
        body: list[Any] = message.body
        try:
            if message.member == "DevicePolicyApplied":  # id, target_new, device_rule, rule_id, attributes
                self._applied(int(body[0]), int(body[1]), int(body[3]), body[4])
            elif message.member == "DevicePolicyChanged":  # id, old, new, device_rule, rule_id, attributes
                self._applied(int(body[0]), int(body[2]), int(body[4]), body[5])
            elif message.member == "DevicePresenceChanged" and int(body[1]) == PRESENCE_REMOVE:
                self._recorded.pop(int(body[0]), None)
        except (IndexError, TypeError, ValueError, DeviceRuleError) as exc:
            log.warning("USBGuard %s signal unreadable: %s", message.member, exc)
        return False

    def _applied(self, device_id: int, target: int, rule_id: int, attributes: dict[str, str]) -> None:
        device = device_from_attributes(attributes)
        if target == ALLOW and rule_id in self._own_rule_ids:
            self._recorded[device_id] = target  # a built-in device: not news
            return
        self._record(device_id, target, device, "")

    def _record(self, device_id: int, target: int, device: UsbDevice, why: str) -> None:
        if self._recorded.get(device_id) == target:
            return
        self._recorded[device_id] = target
        decided = verdict(device, self.provisioned, self.rules)
        kind = EventKind.USB_ALLOWED if target == ALLOW else EventKind.USB_BLOCKED
        data: dict[str, Any] = {"id": device.id, "name": device.name[:80], "classes": list(decided.classes),
                                "reason": why or decided.reason}
        self.events.record(Event(kind, self.clock(), data))
        log.info("USB %s: %s %s (%s)", TARGET_NAMES.get(target, target), device.id, device.name,
                 ", ".join(decided.classes))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m agent.os.usbguard rules [--policy FILE]`: the baseline rule set the image
    ships in USBGuard's RuleFile before the first boot (no device provisioned yet: hubs,
    keyboards and mice, and what the policy's `usb` table allows)."""
    import argparse  # noqa: PLC0415 - the command only
    import sys  # noqa: PLC0415

    from agent.core.parse import PolicyError, load_policy_file  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m agent.os.usbguard")
    sub = parser.add_subparsers(dest="command", required=True)
    rules_cmd = sub.add_parser("rules", help="print the baseline USBGuard rule set")
    rules_cmd.add_argument("--policy", type=Path, help="take the policy's usb table (default: none allowed)")
    args = parser.parse_args(argv)
    rules = UsbRules()
    if args.policy is not None:
        try:
            rules = load_policy_file(args.policy).usb
        except PolicyError as exc:
            print(exc, file=sys.stderr)
            return 2
    for rule in rule_set((), rules):
        print(rule)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
