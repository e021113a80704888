"""The shipped polkit rule in the real polkitd (Debian's, on a private system bus, in a
mount namespace whose /etc/passwd and /etc/group have a child in minormode-child and
another account): the child is refused outright what the rule lists; the other account
is asked to authenticate as before; what the rule does not list is the same for both.
The agent's own actions (config/polkit/org.minormode.policy, installed beside the
system's) are among those: the child gets NO, with no password dialog; the other account,
an adult at the tablet, is asked to authenticate as an administrator (auth_admin)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
RULES = REPO / "config/lockdown/etc/polkit-1/rules.d"
AGENT_ACTIONS = REPO / "config/polkit/org.minormode.policy"
SYSTEM_ACTIONS = Path("/usr/share/polkit-1/actions")
PROBE = Path(__file__).with_name("polkit_probe.py")
NOT_AUTHORIZED = 1
AFTER_AUTHENTICATION = 2  # pkcheck: authorised only if the subject authenticates (a challenge)
pytestmark = [pytest.mark.root, pytest.mark.skipif(not Path("/usr/lib/polkit-1/polkitd").exists(),
                                                   reason="polkitd (config/deps) not installed")]

# registered by systemd's own policy files, so present wherever systemd is
REFUSED = ("org.freedesktop.timedate1.set-time", "org.freedesktop.timedate1.set-timezone",
           "org.freedesktop.timedate1.set-ntp", "org.freedesktop.hostname1.set-hostname",
           "org.freedesktop.network1.set-dns-servers", "org.freedesktop.systemd1.manage-units",
           "org.freedesktop.login1.set-user-linger", "org.freedesktop.login1.attach-device")
AGENT = ("org.minormode.grant-time", "org.minormode.pairing")
NOT_REFUSED = ("org.freedesktop.locale1.set-locale", "org.freedesktop.login1.power-off",
               "org.freedesktop.login1.reboot")


def inotify_instances_free() -> int:
    """dbus-daemon and polkitd each need an inotify instance (root's limit is per user)."""
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    used = 0
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            used += sum(1 for fd in fd_dir.iterdir() if fd.readlink() == Path("anon_inode:inotify"))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue  # a process that ended while we looked
    return limit - used


def test_the_real_polkitd_refuses_the_child(tmp_path: Path) -> None:
    free = inotify_instances_free()
    if free < 3:
        pytest.skip(f"only {free} inotify instances free on this machine (fs.inotify.max_user_instances): "
                    "dbus-daemon and polkitd cannot start")
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    shutil.copytree(SYSTEM_ACTIONS, tmp_path / "actions")
    shutil.copy(AGENT_ACTIONS, tmp_path / "actions")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, str(PROBE),
                           str(tmp_path), str(rules), *REFUSED, *AGENT, *NOT_REFUSED],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr + (tmp_path / "polkitd.log").read_text()
    answers = json.loads(done.stdout)
    for action in REFUSED:
        child, other = answers[action]
        assert child == NOT_AUTHORIZED, f"{action}: the child got {child}"
        assert other != NOT_AUTHORIZED, f"{action}: the other account is refused too ({other})"
    for action in AGENT:
        child, adult = answers[action]
        assert child == NOT_AUTHORIZED, f"{action}: the child got {child}"
        assert adult == AFTER_AUTHENTICATION, f"{action}: the adult got {adult}, not auth_admin's challenge"
    for action in NOT_REFUSED:
        child, other = answers[action]
        assert child == other, f"{action}: the child {child}, the other {other}"
