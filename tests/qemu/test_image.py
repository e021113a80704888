"""The built image, read without mounting anything: manifest, partition table (sfdisk),
boot partition (mtools), root file system (debugfs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from qemu_vm import REPO, needs_root_and_qemu

import agent

pytestmark = needs_root_and_qemu
SECTOR = 512


def _run(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def _partitions(image: Path) -> list[dict[str, object]]:
    table = json.loads(_run("sfdisk", "--json", str(image)))["partitiontable"]
    assert table["label"] == "dos"
    parts: list[dict[str, object]] = table["partitions"]
    return parts


def _root_fs(image: Path) -> str:
    start = _partitions(image)[1]["start"]
    assert isinstance(start, int)
    return f"{image}?offset={start * SECTOR}"


def _debugfs(image: Path, request: str) -> str:
    r = subprocess.run(["debugfs", "-R", request, _root_fs(image)], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _exists(image: Path, path: str) -> bool:
    """debugfs prints an inode for a path that exists, and "File not found" on stderr."""
    r = subprocess.run(["debugfs", "-R", f"stat {path}", _root_fs(image)], capture_output=True,
                       text=True, timeout=60, check=False)
    found = "Inode:" in r.stdout
    assert found != ("File not found" in r.stderr), r.stderr
    return found


def _release_factory_conf(tmp: Path) -> str:
    """20-factory.conf as image-build renders it for the release from the shipped factory.toml."""
    out = tmp / "20-factory.conf"
    subprocess.run([sys.executable, str(REPO / "image-build/lib/agent_conf.py"),
                    str(REPO / "image-build/factory.toml"), str(out)],
                   capture_output=True, check=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out.read_text()


def test_manifest_lists_agent_kernel_and_packages(test_image: Path) -> None:
    m = json.loads((test_image / "manifest.json").read_text())
    assert m["agent"]["name"] == "minormode" and m["agent"]["version"] == agent.__version__
    assert m["kernel"]["package"].startswith("linux-image-") and m["kernel"]["release"].endswith("-arm64")
    assert m["kernel"]["version"]
    assert {"vmlinuz", "initrd.img", "config.txt", "cmdline.txt"} <= set(m["kernel"]["boot_files"])
    debs = {p["name"]: p for p in m["debian_packages"]}
    assert {"systemd", "systemd-resolved", "python3", "nftables", "udev", "dbus"} <= set(debs)
    assert all(p["version"] and p["architecture"] in ("arm64", "all") for p in debs.values())
    assert not {"openssh-server", "sudo", "dropbear"} & set(debs)
    unpacked = {p["name"] for p in m["unpacked_packages"]}
    assert {"raspi-firmware", "busybox-static", m["kernel"]["package"]} <= unpacked
    python = {p["name"].lower() for p in m["python_packages"]}
    assert {"minormode", "cryptography", "dbus-fast", "aiohttp", "segno", "tzdata"} <= python
    assert not {"sqlite-utils", "psutil", "click"} & python, "a dependency ARCHITECTURE.md dropped is back"
    assert {"minormode-agent.service", "minormode-firstboot.service"} <= set(m["units_enabled"])
    assert m["factory"] == tomllib.loads((REPO / "image-build/factory.toml").read_text())
    image = test_image / m["image"]["file"]
    digest = hashlib.sha256()
    with image.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert m["image"]["sha256"] == digest.hexdigest()
    assert image.stat().st_size == m["image"]["size_bytes"]


def test_partition_table(test_image: Path) -> None:
    image = test_image / "minormode-test.img"
    size = image.stat().st_size
    assert size & (size - 1) == 0, "an SD image for the Raspberry Pi is a power of two in size"
    boot, root, state = _partitions(image)
    assert boot["type"] == "c" and boot.get("bootable") is True
    assert root["type"] == "83" and state["type"] == "83"
    assert boot["start"] == 2048
    assert isinstance(root["start"], int) and isinstance(root["size"], int)
    assert isinstance(state["start"], int) and isinstance(state["size"], int)
    assert state["start"] == root["start"] + root["size"], "the state partition does not follow the root"
    assert (state["start"] + state["size"]) * SECTOR <= size
    # the agent's state partition (issue 16): ext4, labelled as etc/fstab mounts it, root's only
    fs = f"{image}?offset={state['start'] * SECTOR}"
    label = subprocess.run(["e2label", fs], capture_output=True, text=True, timeout=60, check=False)
    assert label.stdout.strip() == "minormode-state", label.stderr
    assert "LABEL=minormode-state /var/lib/minormode ext4" in _debugfs(image, "cat /etc/fstab")


def test_boot_partition(test_image: Path) -> None:
    image = test_image / "minormode-test.img"
    fat = f"{image}@@{2048 * SECTOR}"
    listing = _run("mdir", "-b", "-i", fat, "::/")
    names = {line.rstrip("/").split("/")[-1].lower() for line in listing.split()}
    assert {"vmlinuz", "initrd.img", "config.txt", "cmdline.txt", "bcm2837-rpi-3-b.dtb",
            "bcm2711-rpi-4-b.dtb", "start.elf", "bootcode.bin", "fixup.dat"} <= names
    assert "root=LABEL=minormode-root" in _run("mtype", "-i", fat, "::/cmdline.txt")
    assert "initramfs initrd.img" in _run("mtype", "-i", fat, "::/config.txt")
    label = _run("minfo", "-i", fat, "::")
    assert "MMBOOT" in label


def test_root_file_system(test_image: Path, tmp_path: Path) -> None:
    image = test_image / "minormode-test.img"
    header = _run("dumpe2fs", "-h", _root_fs(image))
    assert "Filesystem volume name:   minormode-root" in header
    assert "clean" in header
    assert _debugfs(image, "cat /etc/machine-id").strip() == "uninitialized"
    assert _debugfs(image, "cat /etc/minormode/factory.toml") == (REPO / "image-build/factory.toml").read_text()
    wants = _debugfs(image, "ls -l /etc/systemd/system/multi-user.target.wants")
    assert "minormode-agent.service" in wants and "minormode-firstboot.service" in wants
    masked = _debugfs(image, "stat /etc/systemd/system/serial-getty@.service")
    assert 'Fast link dest: "/dev/null"' in masked
    factory_conf = _debugfs(image, "cat /etc/minormode/agent.conf.d/20-factory.conf")
    assert factory_conf == _release_factory_conf(tmp_path), "the test variant's agent settings are not the release's"
    assert 'dns_upstreams_from = "/run/systemd/resolve/resolv.conf"' in factory_conf
    assert _debugfs(image, "cat /etc/minormode/agent.conf") == (REPO / "config/agent.conf").read_text()
    assert _debugfs(image, "cat /etc/minormode/agent.conf.d/10-image.conf") == \
        (REPO / "image-build/agent.conf.d/10-image.conf").read_text()
    assert not _exists(image, "/etc/minormode/agent.env")
    resolv = _debugfs(image, "stat /etc/resolv.conf")
    assert 'Fast link dest: "../run/systemd/resolve/stub-resolv.conf"' in resolv
    assert "DHCP=yes" in _debugfs(image, "cat /etc/systemd/network/80-minormode-dhcp.network")
    assert "FallbackDNS=\n" in _debugfs(image, "cat /etc/systemd/resolved.conf.d/minormode.conf")
    assert "systemd-networkd.service" in wants
    assert "systemd-resolved.service" in _debugfs(image, "ls -l /etc/systemd/system/sysinit.target.wants")
    agent_unit = _debugfs(image, "cat /usr/lib/systemd/system/minormode-agent.service")
    assert agent_unit == (REPO / "systemd/minormode-agent.service").read_text()
    passwd = _debugfs(image, "cat /etc/passwd")
    child = next(line for line in passwd.splitlines() if line.startswith("child:"))
    assert child.split(":")[2] == "1000"
    group = _debugfs(image, "cat /etc/group")
    for line in group.splitlines():
        name, _, _, members = line.split(":")
        if name in ("sudo", "adm", "wheel", "root", "disk", "shadow"):
            assert "child" not in members.split(","), f"child is in group {name}"
    # the state is made on the device (first boot), never shipped: on the root file system
    # /var/lib/minormode is only the empty mount point of the state partition
    names = _debugfs(image, "ls /var/lib/minormode").split()
    assert [n for n in names if not n.startswith("(") and n not in (".", "..") and not n.isdigit()] == [], names
    assert not _exists(image, "/usr/sbin/sshd") and not _exists(image, "/usr/bin/sudo")
    home = _debugfs(image, "stat /home/child")
    assert "Mode:  0750" in home and "User:  1000" in home


@pytest.mark.parametrize("path", ["/opt/minormode/venv/bin/python", "/opt/minormode/bin/minormodectl",
                                  "/opt/minormode/libexec/minormode-lockdown",
                                  "/etc/sysctl.d/90-minormode.conf", "/etc/systemd/logind.conf.d/minormode.conf"])
def test_root_holds(test_image: Path, path: str) -> None:
    assert _exists(test_image / "minormode-test.img", path)
