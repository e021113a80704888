"""A root file system that passes the lockdown audit, made the way the image makes it:
the image's boot files, agent settings and child account, USBGuard as its package installs it
(with the grants the image removes), then config/lockdown/install.sh and the boot manifest
writer. Each test gets its own copy to break."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
INSTALL = REPO / "config" / "lockdown" / "install.sh"
INSTALL_USBGUARD = REPO / "config" / "lockdown" / "install-usbguard.sh"

# What the base system and the usbguard package put there (the parts the image does not ship).
BASE_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nchild:x:1000:1000:Child:/home/child:/bin/bash\n",
    "etc/shadow": "root:!:20000:0:99999:7:::\nchild:!:20000:0:99999:7:::\n",  # passwd --lock root
    "etc/group": "root:x:0:\nsudo:x:27:\nplugdev:x:46:\nnetdev:x:100:\nchild:x:1000:\n",
    "etc/sudoers": "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
    "etc/sudoers.d/README": "# files here are read by sudo\n",
    "usr/lib/systemd/system/getty@.service": "[Service]\nExecStart=-/sbin/agetty %I\n",
    "usr/lib/systemd/system/serial-getty@.service": "[Service]\nExecStart=-/sbin/agetty %I\n",
    "usr/lib/sysctl.d/50-default.conf": "kernel.sysrq = 0x01b6\n",
    "usr/share/polkit-1/rules.d/50-default.rules": "polkit.addAdminRule(function () { return ['unix-group:sudo']; });\n",
    # usbguard 1.1.2's package (its postinst also makes IPCAccessControl.d/:plugdev), with
    # IPCAllowedGroups=root as the USB layer (issue 18 item 1) configures it
    "etc/usbguard/usbguard-daemon.conf": (
        "RuleFile=/etc/usbguard/rules.conf\nImplicitPolicyTarget=block\nPresentDevicePolicy=apply-policy\n"
        "IPCAllowedUsers=root\nIPCAllowedGroups=root\nIPCAccessControlFiles=/etc/usbguard/IPCAccessControl.d/\n"),
    "etc/usbguard/rules.conf": 'allow id 1d6b:0002 serial "" name "xHCI Host Controller" with-interface 09:00:00\n',
    "usr/share/polkit-1/rules.d/org.usbguard1.rules": (
        "polkit.addRule(function(action, subject) { if (subject.isInGroup('plugdev')) "
        "return polkit.Result.YES; });\n"),
    # systemd's (252): the user manager's unit and the generator that reads ~/.config/environment.d
    "usr/lib/systemd/system/user@.service": "[Service]\nUser=%i\nExecStart=/lib/systemd/systemd --user\n",
    "usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator": "\x7fELF",
    "usr/lib/systemd/system/usbguard.service": "[Service]\nExecStart=/usr/sbin/usbguard-daemon\n",
    "usr/lib/systemd/system/usbguard-dbus.service": "[Service]\nExecStart=/usr/sbin/usbguard-dbus --system\n",
}
BASE_LINKS = {
    # Debian's default: getty on tty1 (harmless once getty@ is masked)
    "etc/systemd/system/getty.target.wants/getty@tty1.service": "/usr/lib/systemd/system/getty@.service",
    "etc/systemd/system/basic.target.wants/usbguard.service": "/usr/lib/systemd/system/usbguard.service",
    "etc/systemd/system/multi-user.target.wants/usbguard-dbus.service":
        "/usr/lib/systemd/system/usbguard-dbus.service",
    "usr/lib/systemd/system/multi-user.target.wants/getty.target": "../getty.target",  # a target, not a getty
    "lib": "usr/lib",  # merged /usr
}


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_passing_root(root: Path) -> None:
    for relative, text in BASE_FILES.items():
        write(root, relative, text)
    (root / "etc/usbguard/IPCAccessControl.d").mkdir(parents=True)
    for relative, target in BASE_LINKS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / relative)
    # the image's own files
    write(root, "etc/minormode/agent.conf", (REPO / "config/agent.conf").read_text())
    write(root, "etc/minormode/agent.conf.d/10-image.conf",
          (REPO / "image-build/agent.conf.d/10-image.conf").read_text())
    write(root, "etc/fstab", (REPO / "image-build/overlay/etc/fstab").read_text())
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    for name in ("cmdline.txt", "config.txt"):
        shutil.copy(REPO / "image-build/boot" / name, boot / name)
    (boot / "vmlinuz").write_bytes(bytes(range(256)) * 4)
    # the lockdown, as image-build installs it
    subprocess.run([str(INSTALL), str(root), "child"], check=True, capture_output=True)
    (root / "etc/usbguard/IPCAccessControl.d/:plugdev").write_text("Devices=modify\n")  # the package's postinst
    rules = root.parent / "usbguard-rules.conf"
    rules.write_text(subprocess.run([sys.executable, "-m", "agent.os.usbguard", "rules", "--policy",
                                     str(REPO / "config/policies/8-12.toml")], check=True, cwd=REPO,
                                    capture_output=True, text=True).stdout)
    subprocess.run([str(INSTALL_USBGUARD), str(root), str(rules)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "agent.lockdown.manifest", "--boot-files", str(boot),
                    "--out", str(root / "usr/lib/minormode/boot-manifest.json")], check=True, cwd=REPO)


@pytest.fixture(scope="session")
def passing_root_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lockdown") / "root"
    root.mkdir()
    build_passing_root(root)
    return root


@pytest.fixture
def passing_root(passing_root_template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(passing_root_template, copy, symlinks=True)
    return copy
