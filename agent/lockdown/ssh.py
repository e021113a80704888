"""No remote login: no SSH server enabled, none installed unless its units are masked."""

from __future__ import annotations

from collections.abc import Sequence

from agent.lockdown.model import Context, Finding, RootView
from agent.lockdown.units import ETC_UNITS, enabled_units, is_masked_or_template_masked, unit_stem

SSH_UNITS = ("ssh", "sshd", "dropbear")  # ssh.service, ssh.socket, ssh@.service, sshd-*
SSH_SERVERS = {"/usr/sbin/sshd": "ssh.service", "/usr/sbin/dropbear": "dropbear.service"}


def _is_ssh(unit: str) -> bool:
    stem = unit_stem(unit)
    return stem in SSH_UNITS or stem.startswith("sshd-")


def ssh_enabled(view: RootView, _ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"ssh.enabled:{e.unit}", f"{e.unit} is enabled: remote logins", e.link,
                "purge openssh-server (image-build/packages.txt) or mask the unit")
        for e in enabled_units(view) if _is_ssh(e.unit) and not is_masked_or_template_masked(view, e.unit)
    ]


def ssh_installed(view: RootView, _ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"ssh.installed:{unit}", f"{server} is installed and {unit} is not masked", server,
                f"purge the package, or ln -sfn /dev/null {ETC_UNITS}/{unit}")
        for server, unit in SSH_SERVERS.items()
        if view.exists(server) and not is_masked_or_template_masked(view, unit)
    ]
