"""Every lockdown check, in the order a report lists them, and the audit that runs them.

The production line runs `minormodectl lockdown check` on each unit; the image's tests run
it on a root in a directory. A check is a pure function of the root's view and the
context (agent/lockdown/model.py); this module only lists them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.lockdown import boot, console, polkit, privilege, ssh, storage, sysrq, usbguard, usermanager
from agent.lockdown.accounts import children_by_name, children_by_uid, configured_child_uids
from agent.lockdown.model import CheckSpec, Context, Finding, RootView, Runtime

CHECKS = (
    CheckSpec("console.masked", "getty, serial getty, debug shell units masked", console.getty_masked),
    CheckSpec("console.getty-enabled", "no getty enabled", console.getty_enabled),
    CheckSpec("console.logind", "logind: NAutoVTs=0, ReserveVT=0", console.logind_vts),
    CheckSpec("console.xorg", "Xorg (when installed): no VT switching, no zap", console.xorg_vt_switching),
    CheckSpec("console.ctrl-alt-del", "Ctrl+Alt+Del masked, no burst reboot", console.ctrl_alt_del),
    CheckSpec("sysrq.sysctl", "kernel.sysrq = 0 at boot", sysrq.sysrq_configured),
    CheckSpec("sysrq.running", "kernel.sysrq is 0 now (running system)", sysrq.sysrq_running),
    CheckSpec("ssh.enabled", "no SSH server enabled", ssh.ssh_enabled),
    CheckSpec("ssh.installed", "no SSH server installed unmasked", ssh.ssh_installed),
    CheckSpec("accounts.child", "the child's account exists", privilege.child_account),
    CheckSpec("privilege.group", "the child in no sudo, plugdev, netdev... group", privilege.child_groups),
    CheckSpec("privilege.root-password", "root locked, no other uid 0 (su)", privilege.root_login),
    CheckSpec("privilege.sudoers", "no sudoers rule for the child", privilege.sudo_rules),
    CheckSpec("polkit.child-rule", "polkit refuses the child time, network, users, software",
              polkit.child_refused),
    CheckSpec("polkit.order", "the child's polkit rule is asked first", polkit.child_rule_first),
    CheckSpec("polkit.child-group", "the child is in the group the rule refuses", polkit.child_in_group),
    CheckSpec("home.user-manager", "the child's user manager loads no unit from the home; no user "
              "site-packages",
              usermanager.home_units),
    CheckSpec("home.environment-d", "no environment from the child's ~/.config/environment.d",
              usermanager.environment_d),
    CheckSpec("storage.state", "the agent's state on a partition of its own, nosuid,nodev,noexec",
              storage.state_partition),
    CheckSpec("storage.noexec", "the child's places (/home, /var/tmp, /dev/shm) noexec,nosuid,nodev",
              storage.child_places),
    CheckSpec("usbguard.daemon-conf", "USBGuard configured, its policy present, devices present at "
              "start judged, none authorised before, no IPC for plugdev", usbguard.daemon_config),
    CheckSpec("usbguard.rules", "USBGuard's allow rules (its rule file and rule folder) judge all of a "
              "device's interfaces", usbguard.rule_operators),
    CheckSpec("usbguard.restart", "USBGuard restarts spaced out and never gives up",
              usbguard.restart_bounded),
    CheckSpec("usbguard.service", "usbguard.service and usbguard-dbus.service enabled",
              usbguard.daemon_enabled),
    CheckSpec("usbguard.polkit", "the usbguard package's polkit grant overridden", usbguard.polkit_override),
    CheckSpec("boot.file", "boot files as the image's manifest records them", boot.boot_files),
    CheckSpec("boot.cmdline", "cmdline.txt opens no shell or console", boot.boot_cmdline),
    CheckSpec("boot.running-cmdline", "the booted command line is the image's (running system)",
              boot.running_cmdline),
)


@dataclass(frozen=True)
class Report:
    root: str
    children: tuple[str, ...]
    checks: tuple[str, ...]  # the ids of the checks run
    open: tuple[Finding, ...]

    @property
    def holds(self) -> bool:
        return not self.open


BOOT_CHECKS = tuple(spec for spec in CHECKS if spec.id.startswith("boot."))


def boot_tamper(view: RootView, runtime: Runtime) -> tuple[Finding, ...]:
    """What the agent checks at each boot (item 3: a mismatch is a tamper event): the boot
    files against the manifest, and the command line the kernel booted with. Detection, not
    prevention, on a board without secure boot."""
    ctx = Context(children=(), runtime=runtime)
    return tuple(f for spec in BOOT_CHECKS for f in spec.run(view, ctx))


def context_for(view: RootView, *, child_names: Iterable[str] = (), default_uid: int,
                runtime: Runtime | None = None) -> Context:
    """The children named (by name, which must exist), else those the agent's settings name
    (else `default_uid`, the agent's default)."""
    names = tuple(child_names)
    if names:
        return Context(children=children_by_name(view, names), runtime=runtime)
    found, missing = children_by_uid(view, configured_child_uids(view) or (default_uid,))
    return Context(children=found, missing_child_uids=missing, runtime=runtime)


def audit(view: RootView, ctx: Context, root: str) -> Report:
    findings = tuple(f for spec in CHECKS for f in spec.run(view, ctx))
    return Report(root=root, children=tuple(c.name for c in ctx.children),
                  checks=tuple(spec.id for spec in CHECKS), open=findings)
