"""`minormodectl lockdown check` against a root built from config/lockdown (it passes) and
copies of it with one item broken each (the finding names it, and nothing else opens).

Needs root: config/lockdown/install.sh runs groupadd/usermod --root, which chroot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.lockdown.audit import CHECKS, audit, boot_tamper, context_for
from agent.lockdown.model import Runtime
from agent.lockdown.rootdir import RootDir

REPO = Path(__file__).parents[3]
pytestmark = pytest.mark.root
Breakage = Callable[[Path], None]


def ctl(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "lockdown", "check", *argv],
                          capture_output=True, text=True, cwd=REPO, check=False)


def open_ids(root: Path, runtime: Runtime | None = None) -> set[str]:
    view = RootDir(root)
    return {f.id for f in audit(view, context_for(view, default_uid=1000, runtime=runtime), str(root)).open}


def rm(relative: str) -> Breakage:
    return lambda root: (root / relative).unlink()


def put(relative: str, text: str) -> Breakage:
    def apply(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    return apply


def link(relative: str, target: str) -> Breakage:
    def apply(root: Path) -> None:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / relative)
    return apply


def edit(relative: str, old: str, new: str) -> Breakage:
    def apply(root: Path) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"{relative} has no {old!r}"
        path.write_text(text.replace(old, new))
    return apply


def both(*steps: Breakage) -> Breakage:
    def apply(root: Path) -> None:
        for step in steps:
            step(root)
    return apply


UNITS = "etc/systemd/system"
NO_HOME_UNITS = f"{UNITS}/user@.service.d/60-minormode-no-home-units.conf"
CHILD_RULES = "etc/polkit-1/rules.d/10-minormode-child.rules"
USBGUARD_CONF = "etc/usbguard/usbguard-daemon.conf"
SUDOERS_CHILD = "etc/sudoers.d/child"
FSTAB = "etc/fstab"

# (name, what breaks, the finding ids that must open, exactly)
CASES: list[tuple[str, Breakage, set[str]]] = [
    ("vt getty unmasked", rm(f"{UNITS}/getty@.service"),  # and Debian's getty@tty1 link is live again
     {"console.masked:getty@.service", "console.getty-enabled:getty@tty1.service"}),
    ("autovt unmasked", rm(f"{UNITS}/autovt@.service"), {"console.masked:autovt@.service"}),
    ("serial getty unmasked", rm(f"{UNITS}/serial-getty@.service"), {"console.masked:serial-getty@.service"}),
    ("serial getty enabled", both(rm(f"{UNITS}/serial-getty@.service"),
                                  link(f"{UNITS}/getty.target.wants/serial-getty@ttyAMA0.service",
                                       "/usr/lib/systemd/system/serial-getty@.service")),
     {"console.masked:serial-getty@.service", "console.getty-enabled:serial-getty@ttyAMA0.service"}),
    ("debian's static getty", rm(f"{UNITS}/getty-static.service"), {"console.masked:getty-static.service"}),
    ("debug shell", rm(f"{UNITS}/debug-shell.service"), {"console.masked:debug-shell.service"}),
    ("a later logind drop-in gives VTs back", put("etc/systemd/logind.conf.d/90-vendor.conf",
                                                  "[Login]\nNAutoVTs=6\n"), {"console.logind:NAutoVTs"}),
    ("no logind drop-in", rm("etc/systemd/logind.conf.d/60-minormode-lockdown.conf"),
     {"console.logind:NAutoVTs", "console.logind:ReserveVT"}),
    ("xorg without the lockdown's flags", both(put("usr/lib/xorg/Xorg", "ELF"),
                                               rm("etc/X11/xorg.conf.d/10-minormode-lockdown.conf")),
     {"console.xorg:DontVTSwitch", "console.xorg:DontZap"}),
    ("xorg installed, the shipped flags hold", put("usr/lib/xorg/Xorg", "ELF"), set()),
    ("xorg with one flag off", both(put("usr/lib/xorg/Xorg", "ELF"), edit(
        "etc/X11/xorg.conf.d/10-minormode-lockdown.conf", '"DontZap" "true"', '"DontZap" "off"')),
     {"console.xorg:DontZap"}),
    ("ctrl-alt-del unmasked", rm(f"{UNITS}/ctrl-alt-del.target"), {"console.ctrl-alt-del:target"}),
    ("ctrl-alt-del burst reboot", rm("etc/systemd/system.conf.d/60-minormode-lockdown.conf"),
     {"console.ctrl-alt-del:burst"}),
    ("sysrq back on by sysctl.conf", put("etc/sysctl.conf", "kernel.sysrq=1\n"), {"sysrq.sysctl"}),
    ("sysrq left to systemd's default", rm("etc/sysctl.d/60-minormode-lockdown.conf"), {"sysrq.sysctl"}),
    ("ssh enabled", both(rm(f"{UNITS}/ssh.service"), link(f"{UNITS}/multi-user.target.wants/ssh.service",
                                                           "/usr/lib/systemd/system/ssh.service")),
     {"ssh.enabled:ssh.service"}),
    ("sshd installed, not masked", both(rm(f"{UNITS}/ssh.service"), put("usr/sbin/sshd", "ELF")),
     {"ssh.installed:ssh.service"}),
    ("the child's uid has no account", edit("etc/minormode/agent.conf.d/10-image.conf", "child_uid = [1000]",
                                            "child_uid = [1001]"), {"accounts.child:1001"}),
    ("a later drop-in names another child", put("etc/minormode/agent.conf.d/50-local.conf", "child_uid = [1002]\n"),
     {"accounts.child:1002"}),
    ("child in sudo", edit("etc/group", "sudo:x:27:", "sudo:x:27:child"),
     {"privilege.group:child:sudo", "privilege.sudoers:child:/etc/sudoers"}),
    ("child in plugdev", edit("etc/group", "plugdev:x:46:", "plugdev:x:46:root,child"),
     {"privilege.group:child:plugdev"}),
    ("child in netdev", edit("etc/group", "netdev:x:100:", "netdev:x:100:child"), {"privilege.group:child:netdev"}),
    ("root has a password", edit("etc/shadow", "root:!:", "root:$y$j9T$salt$hash:"), {"privilege.root-password"}),
    ("root needs no password", edit("etc/shadow", "root:!:", "root::"), {"privilege.root-password"}),
    ("a second root", edit("etc/passwd", "child:x:1000:", "toor:x:0:0::/root:/bin/sh\nchild:x:1000:"),
     {"privilege.uid0:toor"}),
    ("sudoers rule for the child", put(SUDOERS_CHILD, "child ALL=(ALL) NOPASSWD: ALL\n"),
     {f"privilege.sudoers:child:/{SUDOERS_CHILD}"}),
    ("sudoers rule for the child's group", put(SUDOERS_CHILD, "%minormode-child ALL=(ALL) ALL\n"),
     {f"privilege.sudoers:child:/{SUDOERS_CHILD}"}),
    ("sudoers rule by uid", put(SUDOERS_CHILD, "#1000 ALL=(root) /usr/bin/date\n"),
     {f"privilege.sudoers:child:/{SUDOERS_CHILD}"}),
    ("sudoers rule through an alias", put(SUDOERS_CHILD, "User_Alias KIDS = alice, \\\n  child\nKIDS ALL=ALL\n"),
     {f"privilege.sudoers:child:/{SUDOERS_CHILD}"}),
    ("sudoers rule for everyone", put(SUDOERS_CHILD, "ALL ALL=(ALL) ALL\n"),
     {f"privilege.sudoers:child:/{SUDOERS_CHILD}"}),
    ("no polkit rule for the child", rm(CHILD_RULES), {"polkit.child-rule"}),
    ("the rule forgets the time", edit(CHILD_RULES, '"org.freedesktop.timedate1.", ', ""),
     {"polkit.child-rule:org.freedesktop.timedate1."}),
    ("the rule forgets software", edit(CHILD_RULES, '"org.freedesktop.packagekit.", ', ""),
     {"polkit.child-rule:org.freedesktop.packagekit."}),
    ("a rules file polkit asks first", put("usr/share/polkit-1/rules.d/05-vendor.rules", "// allow all\n"),
     {"polkit.order:05-vendor.rules"}),
    ("child not in the refused group", edit("etc/group", "minormode-child:x:999:child", "minormode-child:x:999:"),
     {"polkit.child-group:child"}),
    ("the child's user manager reads units and site-packages from the home", rm(NO_HOME_UNITS),
     {"home.user-manager:SYSTEMD_UNIT_PATH", "home.user-manager:PYTHONNOUSERSITE"}),
    ("a drop-in for the child's instance appends the default paths",
     put(f"{UNITS}/user@1000.service.d/zz.conf", "[Service]\nEnvironment=SYSTEMD_UNIT_PATH=/etc/systemd/user:\n"),
     {"home.user-manager:SYSTEMD_UNIT_PATH"}),
    ("a search path naming the home",
     put(f"{UNITS}/user@.service.d/zz.conf",
         '[Service]\nEnvironment="SYSTEMD_UNIT_PATH=%h/.config/systemd/user:/usr/lib/systemd/user"\n'),
     {"home.user-manager:SYSTEMD_UNIT_PATH"}),
    ("a later empty Environment= clears the settings",
     put(f"{UNITS}/user@.service.d/zz.conf", "[Service]\nEnvironment=\n"),
     {"home.user-manager:SYSTEMD_UNIT_PATH", "home.user-manager:PYTHONNOUSERSITE"}),
    ("a later drop-in unsets the search path",
     put(f"{UNITS}/user@.service.d/zz.conf", "[Service]\nUnsetEnvironment=SYSTEMD_UNIT_PATH\n"),
     {"home.user-manager:SYSTEMD_UNIT_PATH"}),
    ("an EnvironmentFile the child writes",
     put(f"{UNITS}/user@1000.service.d/zz.conf", "[Service]\nEnvironmentFile=-%h/.config/manager.env\n"),
     {"home.user-manager:EnvironmentFile:%h/.config/manager.env"}),
    ("~/.pam_environment read by the user manager's PAM stack",
     both(put("etc/pam.d/systemd-user", "session optional pam_systemd.so\n@include common-session-noninteractive\n"),
          put("etc/pam.d/common-session-noninteractive", "session required pam_unix.so\n"
              "session required pam_env.so user_readenv=1 # per-user settings\n")),
     {"home.environment-d:pam_env"}),
    ("~/.pam_environment read at a graphical login (a greeter's PAM service)",
     put("etc/pam.d/lightdm", "auth required pam_unix.so\nsession required pam_env.so readenv=1 user_readenv=1\n"),
     {"home.environment-d:pam_env"}),
    ("environment.d read again", rm("etc/systemd/user-environment-generators/30-systemd-environment-d-generator"),
     {"home.environment-d"}),
    ("the agent's state on the root file system (no line of its own)",
     edit(FSTAB, "LABEL=minormode-state /var/lib/minormode", "#LABEL=minormode-state /var/lib/minormode"),
     {"storage.state"}),
    ("the agent's state as a bind mount of a directory on the root",
     edit(FSTAB, "LABEL=minormode-state /var/lib/minormode ext4 defaults,",
          "/srv/state /var/lib/minormode none bind,"), {"storage.state"}),
    ("the agent's state on a tmpfs (lost at each boot)",
     edit(FSTAB, "LABEL=minormode-state /var/lib/minormode ext4", "tmpfs /var/lib/minormode tmpfs"),
     {"storage.state"}),
    ("the state partition mounted exec-able", edit(FSTAB, "noatime,nosuid,nodev,noexec,errors", "noatime,errors"),
     {"storage.state:options"}),
    ("the child's home exec-able", edit(FSTAB, "/home           none   bind,noexec,nosuid,nodev",
                                        "/home           none   bind,nosuid,nodev"), {"storage.noexec:/home"}),
    ("a later line for /dev/shm undoes noexec", lambda root: (root / FSTAB).write_text(
        (root / FSTAB).read_text() + "tmpfs /dev/shm tmpfs mode=1777,nosuid,nodev 0 0\n"),
     {"storage.noexec:/dev/shm"}),
    ("no usbguard configuration", rm(USBGUARD_CONF), {"usbguard.daemon-conf"}),
    ("usbguard lets unknown devices in", edit(USBGUARD_CONF, "ImplicitPolicyTarget=block", "ImplicitPolicyTarget=allow"),
     {"usbguard.daemon-conf:ImplicitPolicyTarget"}),
    ("no usbguard policy", rm("etc/usbguard/rules.conf"), {"usbguard.policy"}),
    ("the package's IPC group", edit(USBGUARD_CONF, "IPCAllowedGroups=root", "IPCAllowedGroups=root plugdev"),
     {"usbguard.ipc:IPCAllowedGroups:plugdev"}),
    ("the package's IPC access file", put("etc/usbguard/IPCAccessControl.d/:plugdev", "Devices=modify\n"),
     {"usbguard.ipc::plugdev"}),
    ("IPC for the child", put("etc/usbguard/IPCAccessControl.d/child", "Devices=modify\n"),
     {"usbguard.ipc:child"}),
    ("usbguard not enabled", rm(f"{UNITS}/basic.target.wants/usbguard.service"),
     {"usbguard.service:usbguard.service"}),
    ("usbguard-dbus not enabled", rm(f"{UNITS}/multi-user.target.wants/usbguard-dbus.service"),
     {"usbguard.service:usbguard-dbus.service"}),
    ("a rule a composite passes", put("etc/usbguard/rules.conf", "allow with-interface one-of { 03:01:01 }\n"),
     {"usbguard.rules:1"}),
    ("a bare allow rule", put("etc/usbguard/rules.conf", "allow with-interface 09:00:00\nallow\n"),
     {"usbguard.rules:2"}),
    ("the package's polkit grant", rm("etc/polkit-1/rules.d/org.usbguard1.rules"), {"usbguard.polkit"}),
    ("a stick plugged in while the tablet was off is kept as it is",
     edit(USBGUARD_CONF, "PresentDevicePolicy=apply-policy", "PresentDevicePolicy=keep"),
     {"usbguard.daemon-conf:PresentDevicePolicy"}),
    ("new devices authorised before usbguard judges them",
     edit(USBGUARD_CONF, "AuthorizedDefault=none", "AuthorizedDefault=all"), {"usbguard.daemon-conf:AuthorizedDefault"}),
    ("a rule folder with a rule a composite passes",
     both(edit(USBGUARD_CONF, "RuleFile=/etc/usbguard/rules.conf",
               "RuleFile=/etc/usbguard/rules.conf\nRuleFolder=/etc/usbguard/rules.d/"),
          put("etc/usbguard/rules.d/20-ok.conf", "allow id 1234:5678 with-interface equals { 03:01:01 }\n"),
          put("etc/usbguard/rules.d/50-stick.conf", "# a stick\n allow with-interface one-of { 08:06:50 }\n")),
     {"usbguard.rules:50-stick.conf:2"}),
    ("usbguard's restart drop-in removed", rm(f"{UNITS}/usbguard.service.d/minormode-restart.conf"),
     {"usbguard.restart:usbguard.service:RestartSec", "usbguard.restart:usbguard.service:StartLimitIntervalSec"}),
    ("a later drop-in puts the 100 ms loop back",
     put(f"{UNITS}/usbguard-dbus.service.d/zz-fast.conf", "[Service]\nRestartSec=100ms\n"),
     {"usbguard.restart:usbguard-dbus.service:RestartSec"}),
    ("no boot manifest", rm("usr/lib/minormode/boot-manifest.json"), {"boot.manifest"}),
    ("a broken boot manifest", put("usr/lib/minormode/boot-manifest.json", '{"format": 1}'), {"boot.manifest"}),
    ("cmdline.txt edited on the card", edit("boot/firmware/cmdline.txt", "quiet", "quiet init=/bin/sh"),
     {"boot.file:cmdline.txt", "boot.cmdline:init=/bin/sh"}),
    ("a serial console added", edit("boot/firmware/cmdline.txt", "console=tty1", "console=serial0,115200 console=tty1"),
     {"boot.file:cmdline.txt", "boot.cmdline:console=serial0,115200"}),
    ("config.txt edited", edit("boot/firmware/config.txt", "enable_uart=1", "enable_uart=1\ndtoverlay=dwc2"),
     {"boot.file:config.txt"}),
    ("the kernel swapped", put("boot/firmware/vmlinuz", "another kernel"), {"boot.file:vmlinuz"}),
    ("boot partition not mounted", lambda root: shutil.rmtree(root / "boot/firmware"),
     {"boot.file:cmdline.txt", "boot.file:config.txt", "boot.file:vmlinuz"}),
]


def test_the_shipped_lockdown_passes(passing_root: Path) -> None:
    done = ctl("--root", str(passing_root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"lockdown holds: {len(CHECKS)} checks" in done.stdout
    assert "OPEN" not in done.stdout


@pytest.mark.parametrize(("breakage", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_each_open_item_is_named(passing_root: Path, breakage: Breakage, expected: set[str]) -> None:
    breakage(passing_root)
    assert open_ids(passing_root) == expected


def test_harmless_sudoers_and_masked_instances_pass(passing_root: Path) -> None:
    put(SUDOERS_CHILD, "# child ALL=(ALL) ALL\nalice ALL=(ALL) ALL  # not the child\n"
        "#1001 ALL=(ALL) ALL\n!child,bob ALL=ALL\nDefaults:child !lecture\n")(passing_root)
    link(f"{UNITS}/getty.target.wants/getty@tty2.service", "/usr/lib/systemd/system/getty@.service")(passing_root)
    assert open_ids(passing_root) == set()


def test_the_cli_prints_what_is_open_with_the_fix(passing_root: Path) -> None:
    rm(f"{UNITS}/ctrl-alt-del.target")(passing_root)
    done = ctl("--root", str(passing_root))
    assert done.returncode == 1
    assert "OPEN console.ctrl-alt-del:target: ctrl-alt-del.target is not masked" in done.stdout
    assert "looked at: /etc/systemd/system/ctrl-alt-del.target" in done.stdout
    assert "fix: ln -sfn /dev/null /etc/systemd/system/ctrl-alt-del.target" in done.stdout
    assert f"1 open ({len(CHECKS)} checks)" in done.stdout


def test_json_carries_what_the_text_shows(passing_root: Path) -> None:
    both(rm(f"{UNITS}/debug-shell.service"), put(SUDOERS_CHILD, "child ALL=ALL\n"))(passing_root)
    text, js = ctl("--root", str(passing_root)), ctl("--root", str(passing_root), "--json")
    assert (text.returncode, js.returncode) == (1, 1)
    report = json.loads(js.stdout)
    assert set(report) == {"root", "running_system", "children", "checks", "holds", "open"}
    assert report["root"] == str(passing_root) and report["running_system"] is False
    assert report["children"] == ["child"] and report["holds"] is False
    assert "console.masked" in report["checks"] and "boot.file" in report["checks"]
    assert [set(f) for f in report["open"]] == [{"id", "what", "path", "fix"}] * 2
    assert {f["id"] for f in report["open"]} == {"console.masked:debug-shell.service",
                                                 f"privilege.sudoers:child:/{SUDOERS_CHILD}"}
    for finding in report["open"]:
        assert f"OPEN {finding['id']}: {finding['what']}" in text.stdout
        assert f"fix: {finding['fix']}" in text.stdout


def test_json_when_everything_holds(passing_root: Path) -> None:
    done = ctl("--root", str(passing_root), "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["holds"] is True and report["open"] == []


def test_child_user_names_the_account(passing_root: Path) -> None:
    put("etc/passwd", (passing_root / "etc/passwd").read_text()
        + "kid2:x:1002:1002::/home/kid2:/bin/bash\n")(passing_root)
    edit("etc/group", "sudo:x:27:", "sudo:x:27:kid2")(passing_root)
    assert ctl("--root", str(passing_root)).returncode == 0  # the agent's child (uid 1000) holds
    done = ctl("--root", str(passing_root), "--child-user", "kid2", "--json")
    assert done.returncode == 1
    ids = {f["id"] for f in json.loads(done.stdout)["open"]}
    assert {"privilege.group:kid2:sudo", "polkit.child-group:kid2"} <= ids


@pytest.mark.parametrize(("argv", "named"), [
    (["--root", "/nonexistent/root"], "--root /nonexistent/root: no such directory"),
    (["--child-user", "nobody-here", "--root", "{root}"], "--child-user nobody-here: no such account"),
    (["--root", "{empty}"], "not a root file system"),
    (["--colour"], "unrecognized arguments: --colour"),
])
def test_bad_input_exits_2_naming_it(passing_root: Path, tmp_path: Path, argv: list[str], named: str) -> None:
    (tmp_path / "empty").mkdir()
    done = ctl(*(a.format(root=passing_root, empty=tmp_path / "empty") for a in argv))
    assert done.returncode == 2
    assert named in done.stderr
    assert done.stdout == ""


def test_running_system_facts(passing_root: Path) -> None:
    image_cmdline = (passing_root / "boot/firmware/cmdline.txt").read_text().strip()
    firmware = "coherent_pool=1M 8250.nr_uarts=0 bcm2708_fb.fbwidth=800"
    assert open_ids(passing_root, Runtime(sysrq="0", cmdline=f"{firmware} {image_cmdline}")) == set()
    assert open_ids(passing_root, Runtime(sysrq="438", cmdline=image_cmdline)) == {"sysrq.running"}
    booted = image_cmdline.replace("root=LABEL=minormode-root", "root=/dev/sda2") + " systemd.debug_shell"
    assert open_ids(passing_root, Runtime(sysrq="0", cmdline=booted)) == {
        "boot.running-cmdline:systemd.debug_shell", "boot.running-cmdline:missing:root=LABEL=minormode-root"}


def test_the_running_system_is_audited_with_its_kernel_facts() -> None:
    done = ctl("--json")  # this machine: whatever is open, it is a report, not bad input
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert report["root"] == "/" and report["running_system"] is True
    assert report["holds"] is (done.returncode == 0)


def test_a_file_as_root_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = ctl("--root", str(tmp_path / "file"))
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_boot_files_given_apart_from_the_root(passing_root: Path, tmp_path: Path) -> None:
    """As image-build checks its root before the boot partition is made."""
    shutil.move(passing_root / "boot/firmware", tmp_path / "boot")
    (passing_root / "boot/firmware").mkdir()
    assert ctl("--root", str(passing_root), "--boot", str(tmp_path / "boot")).returncode == 0
    done = ctl("--root", str(passing_root), "--json")
    assert {f["id"] for f in json.loads(done.stdout)["open"]} == {
        "boot.file:cmdline.txt", "boot.file:config.txt", "boot.file:vmlinuz"}
    done = ctl("--root", str(passing_root), "--boot", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and f"--boot {tmp_path / 'nowhere'}: no such directory" in done.stderr


def test_boot_tamper_is_the_boot_checks_alone(passing_root: Path) -> None:
    image_cmdline = (passing_root / "boot/firmware/cmdline.txt").read_text().strip()
    rm(f"{UNITS}/getty@.service")(passing_root)  # not a boot matter: not reported here
    assert boot_tamper(RootDir(passing_root), Runtime(sysrq="1", cmdline=image_cmdline)) == ()
    edit("boot/firmware/cmdline.txt", "quiet", "quiet init=/bin/sh")(passing_root)
    found = boot_tamper(RootDir(passing_root), Runtime(sysrq="0", cmdline=f"{image_cmdline} init=/bin/sh"))
    assert {f.id for f in found} == {"boot.file:cmdline.txt", "boot.cmdline:init=/bin/sh",
                                     "boot.running-cmdline:init=/bin/sh"}


def test_other_environment_for_the_user_manager_passes(passing_root: Path) -> None:
    """More variables, in a later drop-in or the child's instance, keep the search path."""
    put(f"{UNITS}/user@1000.service.d/70-lang.conf",
        '[Service]\nEnvironment="LANG=zh_CN.UTF-8" TZ=Asia/Shanghai\nEnvironmentFile=-/etc/default/locale\n')(passing_root)
    assert open_ids(passing_root) == set()
