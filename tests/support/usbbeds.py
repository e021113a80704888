"""USB test beds for a real usbguard-daemon and pyudev under umockdev (FACTS.md).

A `.umockdev` file describes sysfs devices (P: path, E: uevent property, A: attribute,
H: binary attribute as hex). USBGuard reads each device's `descriptors` attribute for its
interfaces, so the beds carry real USB descriptors built here. Every file holds the PCI
controller and the root hub too (USBGuard skips a device whose parent is not defined, and
skips a definition it already has), so any bed can be hot-plugged alone: hard-link the
file into the daemon's device directory (a copy races: the daemon reads a partial file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PCI = "/devices/pci0000:00/0000:00:14.0"
ROOT_HUB = f"{PCI}/usb1"


def descriptors(vendor: int, product: int, interfaces: tuple[tuple[int, int, int], ...],
                device_class: int = 0) -> str:
    """Device descriptor, one configuration and its interface descriptors, as hex."""
    device = (bytes([18, 1, 0x00, 0x02, device_class, 0, 0, 64]) + vendor.to_bytes(2, "little")
              + product.to_bytes(2, "little") + bytes([0, 1, 1, 2, 3, 1]))
    body = b"".join(bytes([9, 4, n, 0, 0, c, s, p, 0]) for n, (c, s, p) in enumerate(interfaces))
    config = bytes([9, 2]) + (9 + len(body)).to_bytes(2, "little") + bytes([len(interfaces), 1, 0, 0x80, 50])
    return (device + config + body).hex().upper()


def _usb_block(path: str, port: int, vendor: int, product: int, interfaces: tuple[tuple[int, int, int], ...],
               name: str, serial: str, device_class: int = 0) -> str:
    return "\n".join([
        f"P: {path}", "E: SUBSYSTEM=usb", "E: DEVTYPE=usb_device",
        f"E: DEVNAME=/dev/bus/usb/001/{port + 1:03d}", "E: BUSNUM=001", f"E: DEVNUM={port + 1:03d}",
        f"E: PRODUCT={vendor:x}/{product:x}/100", "A: authorized=1", "A: authorized_default=0",
        f"A: bDeviceClass={device_class:02x}", f"A: bNumInterfaces= {len(interfaces)}", "A: busnum=1",
        f"A: devnum={port + 1}", f"A: devpath={port}", f"A: idProduct={product:04x}", f"A: idVendor={vendor:04x}",
        f"A: product={name}", f"A: serial={serial}", "A: port/connect_type=hotplug",
        f"H: descriptors={descriptors(vendor, product, interfaces, device_class)}", ""])


HEAD = "\n".join([f"P: {PCI}", "E: SUBSYSTEM=pci", "E: DRIVER=xhci_hcd", "A: class=0x0c0330", "",
                  _usb_block(ROOT_HUB, 0, 0x1D6B, 0x0002, ((9, 0, 0),), "xHCI Host Controller",
                             "0000:00:14.0", device_class=9)])


@dataclass(frozen=True)
class Bed:
    name: str
    port: int
    vendor: int
    product: int
    interfaces: tuple[tuple[int, int, int], ...]
    serial: str

    @property
    def id(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    @property
    def sysfs(self) -> str:
        return f"{ROOT_HUB}/1-{self.port}"

    def text(self) -> str:
        return HEAD + "\n" + _usb_block(self.sysfs, self.port, self.vendor, self.product, self.interfaces,
                                        self.name, self.serial)


KEYBOARD = Bed("Keyboard", 1, 0x046D, 0xC31C, ((3, 1, 1),), "K1")
TOUCHSCREEN = Bed("Touchscreen", 2, 0x0EEF, 0x0005, ((3, 0, 0),), "T1")
STICK = Bed("Cruzer", 3, 0x0781, 0x5567, ((8, 6, 0x50),), "C1")
ETHERNET = Bed("USB Ethernet", 4, 0x0B95, 0x1790, ((2, 6, 0), (0x0A, 0, 0)), "E1")  # CDC ECM
RNDIS = Bed("Phone tethering", 5, 0x18D1, 0x4EE3, ((0xE0, 1, 3), (0x0A, 0, 0)), "R1")
SERIAL = Bed("USB serial", 6, 0x2341, 0x0043, ((2, 2, 1), (0x0A, 0, 0)), "S1")  # CDC ACM
COMBO = Bed("Keyboard+Storage", 7, 0x1234, 0x5678, ((3, 1, 1), (8, 6, 0x50)), "X1")
WIFI = Bed("Wi-Fi dongle", 8, 0x0BDA, 0x8179, ((0xFF, 0xFF, 0xFF),), "W1")
STICK2 = Bed("Ultra", 10, 0x0781, 0x5581, ((8, 6, 0x50),), "U2")  # a second stick (a re-plug of the same
# sysfs path is skipped by the umockdev backend: it never forgets a path it defined)
BUILTIN = Bed("Built-in Ethernet", 9, 0x0424, 0xEC00, ((0xFF, 0, 0xFF),), "B1")  # a Pi 3's LAN9514

BEDS = (KEYBOARD, TOUCHSCREEN, STICK, ETHERNET, RNDIS, SERIAL, COMBO, WIFI, STICK2, BUILTIN)


def write_beds(directory: Path) -> dict[str, Path]:
    """Every bed's `.umockdev` file in `directory` (outside the daemon's device directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for bed in BEDS:
        path = directory / f"{bed.port}-{bed.name.replace(' ', '_').replace('+', '_')}.umockdev"
        path.write_text(bed.text(), encoding="ascii")
        out[bed.name] = path
    root = directory / "0-root.umockdev"
    root.write_text(HEAD, encoding="ascii")
    out["root"] = root
    return out
