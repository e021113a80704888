"""The QEMU test's shared, expensive steps, done once per session: build the test image
(cached outside the clone by image-build/build.sh) and boot it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from qemu_vm import BOOT_TIMEOUT, BUILD_TIMEOUT, REPO, BootResult, boot, qemu_command, qmp_command


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test variant's output directory (image, vmlinuz, initrd.img, manifest.json)."""
    out = tmp_path_factory.mktemp("image")
    log = out / "build.log"
    # the build's progress goes to the terminal as it happens (seen with pytest -s) and to a log
    with log.open("w") as f, subprocess.Popen(
            [str(REPO / "image-build/build.sh"), "--variant", "test", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                f.write(line)
                if not line.startswith("WARNING: Location"):  # pip's noise about host config
                    sys.stdout.write(line)
            proc.wait(timeout=BUILD_TIMEOUT)
        finally:
            if proc.poll() is None:  # timed out or interrupted: the build's own process group
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"image build failed (exit {proc.returncode}):\n{text[-6000:]}"
    return out


@pytest.fixture(scope="session")
def guest_run(test_image: Path) -> BootResult:
    """One boot of the test image on -M virt (Cortex-A72, 2 CPUs, TCG)."""
    qmp = test_image / "qmp.sock"
    stick = test_image / "usb-stick.img"  # what a child brings: a stick (its contents never matter)
    with stick.open("wb") as f:
        f.truncate(8 << 20)
    cmd = qemu_command(test_image / "minormode-test.img", test_image / "vmlinuz",
                       test_image / "initrd.img", qmp=qmp, usb_stick=stick)

    refused: dict[str, str] = {}  # a device QEMU would not add: its test fails saying why

    def on_fact(key: str, value: str) -> None:
        if value != "now":
            return
        try:
            plug(key)
        except RuntimeError as exc:
            refused[key] = str(exc)

    def plug(key: str) -> None:
        # the guest is ready for the next device: plug it in (the guest checks each is kept out)
        if key == "usb.plug_stick":
            qmp_command(qmp, "device_add", {"driver": "usb-storage", "drive": "stick",
                                            "bus": "xhci.0", "port": "2", "id": "stick0"})
        elif key == "usb.plug_net":  # a USB Ethernet/RNDIS adapter, a phone's tethering
            qmp_command(qmp, "device_add", {"driver": "usb-net", "netdev": "usbnet",
                                            "bus": "xhci.0", "port": "3", "id": "net0"})
        elif key == "usb.plug_serial":  # an FTDI serial adapter
            qmp_command(qmp, "device_add", {"driver": "usb-serial", "chardev": "usbserial",
                                            "bus": "xhci.0", "port": "4", "id": "serial0"})
        elif key == "usb.plug_hub":  # a hub (allowed), then a second stick behind it
            qmp_command(qmp, "device_add", {"driver": "usb-hub", "bus": "xhci.0", "port": "5", "id": "hub0"})
        elif key == "usb.plug_hubstick":
            qmp_command(qmp, "device_add", {"driver": "usb-storage", "drive": "stick2",
                                            "bus": "xhci.0", "port": "5.1", "id": "stick1"})

    result = boot(cmd, BOOT_TIMEOUT, on_fact=on_fact)
    result.facts.update({f"host.refused.{key}": why for key, why in refused.items()})
    (test_image / "console.log").write_text("\n".join(result.console))
    phases = " ".join(f"{k[2:]}@{v}" for k, v in result.facts.items() if k.startswith("t."))
    print(f"QEMU virt: {result.seconds:.0f} s in all, first guest fact after "
          f"{result.first_fact_at or 0:.0f} s; phases at guest uptime (s): {phases}; "
          f"console log {test_image / 'console.log'}")
    return result
