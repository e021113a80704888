"""The directory adapter reads only the root it was given: links resolve inside it."""

from __future__ import annotations

import os
from pathlib import Path

from agent.lockdown.model import Runtime
from agent.lockdown.rootdir import RootDir, running_kernel


def test_absolute_links_resolve_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("the image's\n")
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text("ID=minormode\n")
    os.symlink("/etc/hostname", tmp_path / "etc/name")
    os.symlink("../usr/lib/os-release", tmp_path / "etc/os-release")
    os.symlink("usr/lib", tmp_path / "lib")
    os.symlink("/../../../../etc/hostname", tmp_path / "etc/climb")
    view = RootDir(tmp_path)
    assert view.read_text("/etc/name") == "the image's\n"  # not the auditing machine's /etc/hostname
    assert view.read_text("/etc/os-release") == "ID=minormode\n"
    assert view.read_text("/lib/os-release") == "ID=minormode\n"
    assert view.read_text("/etc/climb") == "the image's\n"  # ".." stops at the root
    assert view.link_target("/etc/name") == "/etc/hostname"
    assert view.link_target("/etc/hostname") is None
    assert view.list_dir("/lib") == ("os-release",)


def test_missing_dangling_and_looping_paths(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/dev/null", tmp_path / "etc/masked")  # the root has no /dev/null
    os.symlink("/etc/b", tmp_path / "etc/a")
    os.symlink("/etc/a", tmp_path / "etc/b")
    view = RootDir(tmp_path)
    assert view.read_text("/etc/missing") is None and not view.exists("/etc/missing")
    assert view.link_target("/etc/masked") == "/dev/null" and not view.exists("/etc/masked")
    assert view.read_text("/etc/a") is None
    assert view.read_text("/etc") is None  # a directory
    assert view.list_dir("/nowhere") == ()


def test_the_running_kernel_facts(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/sysrq").write_text("0\n")
    (tmp_path / "cmdline").write_text("console=tty1 root=LABEL=minormode-root quiet\n")
    assert running_kernel(tmp_path) == Runtime(sysrq="0", cmdline="console=tty1 root=LABEL=minormode-root quiet")
    assert running_kernel(tmp_path / "none") == Runtime(sysrq=None, cmdline=None)


def test_a_directory_seen_as_mounted_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "root/boot/firmware").mkdir(parents=True)  # the empty mount point
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/cmdline.txt").write_text("console=tty1\n")
    os.symlink("/boot/firmware/cmdline.txt", tmp_path / "root/cmdline")
    view = RootDir(tmp_path / "root", {"/boot/firmware": tmp_path / "boot"})
    assert view.read_text("/boot/firmware/cmdline.txt") == "console=tty1\n"
    assert view.read_text("/cmdline") == "console=tty1\n"
    assert view.list_dir("/boot/firmware") == ("cmdline.txt",)
    assert RootDir(tmp_path / "root").read_text("/boot/firmware/cmdline.txt") is None
