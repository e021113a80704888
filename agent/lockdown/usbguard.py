"""USBGuard is in place and the Debian package's grants are undone: the daemon's
configuration blocks what no rule allows, its rule file (the generated policy) exists,
the daemon is enabled, and neither its IPC nor polkit lets plugdev, sudo or the child
change the policy. (The policy's contents are the USB layer's; this checks it is there.)"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.lockdown.model import Account, Context, Finding, RootView
from agent.lockdown.polkit import ETC_RULES
from agent.lockdown.units import enabled_units, is_masked

DAEMON_CONF = "/etc/usbguard/usbguard-daemon.conf"
DEFAULT_RULE_FILE = "/etc/usbguard/rules.conf"
DEFAULT_IPC_DIR = "/etc/usbguard/IPCAccessControl.d"
PACKAGE_POLKIT = "/usr/share/polkit-1/rules.d/org.usbguard1.rules"
OVERRIDE_POLKIT = f"{ETC_RULES}/org.usbguard1.rules"
PRIVILEGED_GROUPS = frozenset({"plugdev", "sudo", "wheel"})


def daemon_settings(text: str) -> dict[str, str]:
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _forbidden_names(children: Sequence[Account]) -> tuple[frozenset[str], frozenset[str]]:
    """Users and groups that must not reach the daemon's IPC: the children and their groups,
    and the groups the package grants."""
    users = frozenset(c.name for c in children)
    groups = PRIVILEGED_GROUPS.union(*(c.groups for c in children)) if children else PRIVILEGED_GROUPS
    return users, groups


def daemon_config(view: RootView, ctx: Context) -> Sequence[Finding]:
    text = view.read_text(DAEMON_CONF)
    if text is None:
        return [Finding("usbguard.daemon-conf", "USBGuard's daemon configuration is missing", DAEMON_CONF,
                        "install usbguard and the image's usbguard-daemon.conf")]
    settings = daemon_settings(text)
    out = []
    target = settings.get("ImplicitPolicyTarget")
    if target not in ("block", "reject"):
        out.append(Finding("usbguard.daemon-conf:ImplicitPolicyTarget",
                           f"ImplicitPolicyTarget={target or 'allow (the default)'}: "
                           "a device no rule names is let in", DAEMON_CONF, "ImplicitPolicyTarget=block"))
    rule_file = settings.get("RuleFile", DEFAULT_RULE_FILE)
    if view.read_text(rule_file) is None:
        out.append(Finding("usbguard.policy", "USBGuard's rule file (the generated policy) is missing",
                           rule_file, "generate the device policy at provisioning"))
    users, groups = _forbidden_names(ctx.children)
    for key, names in (("IPCAllowedUsers", users), ("IPCAllowedGroups", groups)):
        for name in sorted(names & set(settings.get(key, "").split())):
            out.append(Finding(f"usbguard.ipc:{key}:{name}",
                               f"{key} names {name}: it may change the USB policy",
                               DAEMON_CONF, f"remove {name} from {key}"))
    ipc_dir = settings.get("IPCAccessControlFiles", DEFAULT_IPC_DIR).rstrip("/")
    for entry in view.list_dir(ipc_dir):
        user, _, group = entry.partition(":")
        if user in users or group in groups:
            out.append(Finding(f"usbguard.ipc:{entry}", f"{ipc_dir}/{entry} grants {entry} USBGuard IPC",
                               f"{ipc_dir}/{entry}",
                               f"rm {ipc_dir}/{entry} (the package's postinst makes :plugdev)"))
    return out


def daemon_enabled(view: RootView, _ctx: Context) -> Sequence[Finding]:
    enabled = {e.unit for e in enabled_units(view)}
    out = []
    for unit, what in (("usbguard.service", "no USB device is checked"),
                       ("usbguard-dbus.service", "the agent cannot apply the guardian's USB policy")):
        if unit not in enabled or is_masked(view, unit):
            out.append(Finding(f"usbguard.service:{unit}", f"{unit} is not enabled: {what}",
                               f"/etc/systemd/system/multi-user.target.wants/{unit}",
                               f"systemctl --root=ROOT enable {unit} (config/lockdown/install-usbguard.sh)"))
    return out


# USBGuard's set operators that let a composite in on one matching interface (issue 18:
# a keyboard-plus-storage stick passes `one-of { 03:01:01 }` and `all-of { 03:01:01 }`)
_PARTIAL_MATCH = re.compile(r"\bwith-interface\s+(one-of|all-of)\b")


def rule_operators(view: RootView, _ctx: Context) -> Sequence[Finding]:
    """Allow rules in the RuleFile judge ALL of a device's interfaces (`match-all`, `equals`)
    and name something: a bare `allow` lets every device in."""
    settings = daemon_settings(view.read_text(DAEMON_CONF) or "")
    rule_file = settings.get("RuleFile", DEFAULT_RULE_FILE)
    out = []
    for n, raw in enumerate((view.read_text(rule_file) or "").splitlines(), 1):
        line = raw.strip()
        if not line.startswith("allow"):
            continue
        if line == "allow":
            out.append(Finding(f"usbguard.rules:{n}", f"rule {n} is a bare allow: every device is let in",
                               rule_file, "regenerate the rules: python -m agent.os.usbguard rules"))
        elif m := _PARTIAL_MATCH.search(line):
            out.append(Finding(f"usbguard.rules:{n}", f"rule {n} uses with-interface {m.group(1)}: a "
                               "composite (a keyboard with a USB stick inside) is let in by one interface",
                               rule_file, "use match-all (agent/os/usbguard.py writes it)"))
    return out


def polkit_override(view: RootView, _ctx: Context) -> Sequence[Finding]:
    if not view.exists(PACKAGE_POLKIT):
        return []
    override = view.read_text(OVERRIDE_POLKIT)
    if override is not None and "polkit.Result.YES" not in override:
        return []
    return [Finding("usbguard.polkit", "the usbguard package's polkit rule lets plugdev and sudo members "
                    "change the USB policy without a password", OVERRIDE_POLKIT,
                    f"install config/lockdown/etc/polkit-1/rules.d/org.usbguard1.rules into {ETC_RULES}")]
