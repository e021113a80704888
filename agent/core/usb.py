"""Which USB devices the child's tablet accepts, as USBGuard rules and as a verdict.

Pure: the USB adapter (agent/os/usbguard.py) hands devices in as USBGuard describes them
and applies the rules this module writes. The rule set is, in USBGuard's order (the first
rule that matches decides; a device no rule matches is blocked by the daemon's
`ImplicitPolicyTarget=block`):

1. the devices present at provisioning (built-in devices, the touchscreen): each pinned by
   id, serial, port, descriptor hash and `with-interface equals { ... }`;
2. the devices the guardian's policy names (vendor:product, optionally a serial);
3. one class rule, `with-interface match-all { ... }`: a device whose every interface is
   of an accepted class (hubs and HID keyboards/mice always; what the guardian allows).

Composite devices: `match-all` and `equals` look at ALL interfaces. `one-of` and `all-of`
(USBGuard's other set operators) accept a keyboard-plus-storage composite because one
interface (or the listed ones) matches; that composite is the classic "BadUSB" stick.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

# USB interface types as USBGuard writes them: class:subclass:protocol, hex, `*` wildcards.
_IFACE_RE = re.compile(r"^[0-9a-f]{2}:([0-9a-f]{2}|\*):([0-9a-f]{2}|\*)$")
_HEX4_RE = re.compile(r"^[0-9a-f]{4}$")
SERIAL_RE = re.compile(r'^[\x20-\x7e]{1,126}$')  # printable ASCII, as USB serial strings are


class UsbClass(StrEnum):
    """The classes a guardian may allow (a device is accepted when all its interfaces are
    of accepted classes). Hubs and HID are always accepted."""

    HUB = "hub"
    HID = "hid"  # keyboards, mice, touchscreens, game pads
    STORAGE = "storage"  # USB sticks, card readers, disks
    NETWORK = "network"  # USB Ethernet (CDC ECM/NCM/EEM), RNDIS (phone tethering)
    WIRELESS = "wireless"  # Bluetooth and Wi-Fi controllers (class e0)
    SERIAL = "serial"  # CDC ACM serial adapters and modems
    AUDIO = "audio"
    VIDEO = "video"  # webcams
    PRINTER = "printer"
    VENDOR = "vendor"  # vendor-specific (ff): most USB Wi-Fi dongles, FTDI/CH340 serial


ALWAYS_ACCEPTED = frozenset({UsbClass.HUB, UsbClass.HID})

# Each class's interface patterns. CDC data (0a) follows its control interface: both the
# network and serial classes list it, so an adapter is accepted only with its own class.
CLASS_INTERFACES: Mapping[UsbClass, tuple[str, ...]] = {
    UsbClass.HUB: ("09:*:*",),
    UsbClass.HID: ("03:*:*",),
    UsbClass.STORAGE: ("08:*:*",),
    UsbClass.NETWORK: ("02:06:*", "02:0a:*", "02:0c:*", "02:0d:*", "0a:*:*", "e0:01:03", "ef:04:01"),
    UsbClass.WIRELESS: ("e0:*:*",),
    UsbClass.SERIAL: ("02:02:*", "0a:*:*"),
    UsbClass.AUDIO: ("01:*:*",),
    UsbClass.VIDEO: ("0e:*:*", "ef:02:01"),
    UsbClass.PRINTER: ("07:*:*",),
    UsbClass.VENDOR: ("ff:*:*",),
}


@dataclass(frozen=True)
class DeviceMatch:
    """A device the guardian allows by name: vendor and product ids (4 hex digits), and
    optionally its serial (then only that one unit)."""

    vendor: str
    product: str
    serial: str | None = None

    def __str__(self) -> str:
        return f"{self.vendor}:{self.product}" + (f":{self.serial}" if self.serial else "")


@dataclass(frozen=True)
class UsbRules:
    """The policy's `usb` table: classes and devices the guardian allows beyond hubs and
    HID. Empty (the default): storage, network, serial and every other class is blocked."""

    allow_classes: frozenset[UsbClass] = frozenset()
    allow_devices: tuple[DeviceMatch, ...] = ()


@dataclass(frozen=True)
class UsbDevice:
    """A device as USBGuard describes it (its D-Bus `attributes`, or a device rule)."""

    vendor: str
    product: str
    interfaces: tuple[str, ...]
    serial: str = ""
    name: str = ""
    hash: str = ""
    via_port: str = ""

    @property
    def id(self) -> str:
        return f"{self.vendor}:{self.product}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # provisioned | guardian_device | classes | blocked_classes
    classes: tuple[str, ...]  # the device's interface classes, by name ("unknown:xx" when none fits)


def valid_interface(text: str) -> bool:
    return bool(_IFACE_RE.match(text))


def valid_hex4(text: str) -> bool:
    return bool(_HEX4_RE.match(text))


def _quote(text: str) -> str:
    """A USBGuard rule string: double quotes, backslash and quote escaped, non-printable
    bytes as \\xHH (the rule parser's escapes)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7f:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def accepted_interfaces(rules: UsbRules) -> tuple[str, ...]:
    """The interface patterns of every accepted class, each once, in a stable order."""
    seen: dict[str, None] = {}
    for cls in UsbClass:
        if cls in ALWAYS_ACCEPTED or cls in rules.allow_classes:
            seen.update(dict.fromkeys(CLASS_INTERFACES[cls]))
    return tuple(seen)


def provisioned_rule(device: UsbDevice) -> str:
    """An allow rule for one built-in device: this unit (id, serial, descriptor hash) on this
    port with exactly these interfaces."""
    parts = [f"allow id {device.id}", f"serial {_quote(device.serial)}"]
    if device.hash:
        parts.append(f"hash {_quote(device.hash)}")
    if device.via_port:
        parts.append(f"via-port {_quote(device.via_port)}")
    parts.append(f"with-interface {_set(device.interfaces)}")  # no operator: `equals`, USBGuard's default
    return " ".join(parts)


def _set(values: Sequence[str]) -> str:
    """A value set as USBGuard prints it back (`listRules`), so a rule set already in
    force compares equal: one value bare, several in braces."""
    return values[0] if len(values) == 1 else f"{{ {' '.join(values)} }}"


def guardian_device_rule(match: DeviceMatch) -> str:
    rule = f"allow id {match.vendor}:{match.product}"
    return rule + (f" serial {_quote(match.serial)}" if match.serial is not None else "")


def class_rule(rules: UsbRules) -> str:
    return f"allow with-interface match-all {{ {' '.join(accepted_interfaces(rules))} }}"


def rule_set(provisioned: Sequence[UsbDevice], rules: UsbRules) -> tuple[str, ...]:
    """The whole USBGuard rule set, in order (see the module's docstring)."""
    return (*(provisioned_rule(d) for d in provisioned if d.interfaces),
            *(guardian_device_rule(m) for m in rules.allow_devices),
            class_rule(rules))


# --------------------------------------------------------------------------- verdicts

def _pattern_covers(pattern: str, iface: str) -> bool:
    return all(p in ("*", i) for p, i in zip(pattern.split(":"), iface.split(":"), strict=True))


def class_of(iface: str) -> str:
    """The class name of one interface type: the first class whose patterns cover it, or
    `unknown:CC`."""
    for cls in UsbClass:
        if any(_pattern_covers(p, iface) for p in CLASS_INTERFACES[cls]):
            return cls.value
    return f"unknown:{iface[:2]}"


def verdict(device: UsbDevice, provisioned: Sequence[UsbDevice], rules: UsbRules) -> Verdict:
    """What the rule set decides for `device`, the same way USBGuard matches it (first rule
    wins; nothing matched: blocked). The adapter uses it to re-decide devices already
    plugged in when the policy changes, and to say why a device was blocked."""
    classes = tuple(dict.fromkeys(class_of(i) for i in device.interfaces))
    for p in provisioned:
        if (p.interfaces and p.id == device.id and p.serial == device.serial
                and (not p.hash or p.hash == device.hash)
                and (not p.via_port or p.via_port == device.via_port)
                and sorted(p.interfaces) == sorted(device.interfaces)):
            return Verdict(True, "provisioned", classes)
    for m in rules.allow_devices:
        if m.vendor == device.vendor and m.product == device.product and m.serial in (None, device.serial):
            return Verdict(True, "guardian_device", classes)
    accepted = accepted_interfaces(rules)
    if device.interfaces and all(any(_pattern_covers(p, i) for p in accepted) for i in device.interfaces):
        return Verdict(True, "classes", classes)
    return Verdict(False, "blocked_classes", classes)


# --------------------------------------------------------------------------- USBGuard's words

class DeviceRuleError(ValueError):
    """A device description USBGuard sent that this model cannot read."""


_TOKEN_RE = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(\{)|(\})|([^\s{}"]+))')


def _unquote(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and i + 3 < len(text):
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            out.extend(nxt.encode())
            i += 2
            continue
        out.extend(ch.encode())
        i += 1
    return out.decode("utf-8", "replace")


def parse_device_rule(text: str) -> tuple[str, UsbDevice]:
    """A device rule as USBGuard's `listDevices` returns it (`block id 0781:5567 serial
    "C1" ... with-interface { 03:01:01 08:06:50 }`): its target and the device."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise DeviceRuleError(f"cannot read the device rule at {pos}: {text[:80]!r}")
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(("str", _unquote(m.group(1))))
        elif m.group(2):
            tokens.append(("{", "{"))
        elif m.group(3):
            tokens.append(("}", "}"))
        else:
            tokens.append(("word", m.group(4)))
    if not tokens or tokens[0][0] != "word":
        raise DeviceRuleError(f"no target in the device rule: {text[:80]!r}")
    target = tokens[0][1]
    attrs: dict[str, str] = {}
    i = 1
    while i < len(tokens):
        kind, key = tokens[i]
        if kind != "word" or i + 1 >= len(tokens):
            raise DeviceRuleError(f"unexpected {key!r} in the device rule: {text[:80]!r}")
        if tokens[i + 1][0] == "{":
            end = next((j for j in range(i + 2, len(tokens)) if tokens[j][0] == "}"), None)
            if end is None:
                raise DeviceRuleError(f"unclosed {{ in the device rule: {text[:80]!r}")
            attrs[key] = " ".join(v for _, v in tokens[i + 2:end])
            i = end + 1
        else:
            attrs[key] = tokens[i + 1][1]
            i += 2
    return target, device_from_attributes(attrs)


def device_from_attributes(attrs: Mapping[str, str]) -> UsbDevice:
    """A device from USBGuard's D-Bus `attributes` (id, serial, name, hash, via-port,
    with-interface as space-separated types)."""
    vendor, _, product = attrs.get("id", "").partition(":")
    if not (valid_hex4(vendor) and valid_hex4(product)):
        raise DeviceRuleError(f"device id {attrs.get('id')!r} is not vvvv:pppp")
    interfaces = tuple(attrs.get("with-interface", "").split())
    bad = [i for i in interfaces if not valid_interface(i)]
    if bad:
        raise DeviceRuleError(f"interface types {bad} are not cc:ss:pp")
    return UsbDevice(vendor=vendor, product=product, interfaces=interfaces,
                     serial=attrs.get("serial", ""), name=attrs.get("name", ""),
                     hash=attrs.get("hash", ""), via_port=attrs.get("via-port", ""))


def provisioned_devices(devices: Iterable[UsbDevice]) -> tuple[UsbDevice, ...]:
    """The allowed set written at provisioning: every device present then (built-in, the
    touchscreen), one each, in a stable order."""
    unique = {(d.id, d.serial, d.hash, d.via_port): d for d in devices}
    return tuple(unique[k] for k in sorted(unique))
