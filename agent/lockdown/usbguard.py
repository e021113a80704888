"""USBGuard is in place and the Debian package's grants are undone: the daemon's
configuration blocks what no rule allows (also for a device plugged in while the tablet was
off), every rule it loads (its rule file, the generated policy, and any rule folder)
judges all of a device's interfaces, the daemon is enabled and comes back after a crash
without looping, and neither its IPC nor polkit lets plugdev, sudo or the child change the
policy. (The policy's contents are the USB layer's; this checks they are there.)"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.lockdown.model import Account, Context, Finding, RootView
from agent.lockdown.polkit import ETC_RULES
from agent.lockdown.units import ETC_UNITS, UNIT_DIRS, drop_ins, effective, enabled_units, is_masked

DAEMON_CONF = "/etc/usbguard/usbguard-daemon.conf"
DEFAULT_RULE_FILE = "/etc/usbguard/rules.conf"
DEFAULT_IPC_DIR = "/etc/usbguard/IPCAccessControl.d"
PACKAGE_POLKIT = "/usr/share/polkit-1/rules.d/org.usbguard1.rules"
OVERRIDE_POLKIT = f"{ETC_RULES}/org.usbguard1.rules"
PRIVILEGED_GROUPS = frozenset({"plugdev", "sudo", "wheel"})
# What the daemon does with a device already there when it starts (one plugged in while
# the tablet was off, or while the daemon was down): only these judge it by the rules.
JUDGING_PRESENT_POLICIES = frozenset({"apply-policy", "block", "reject"})
# The authorisation a new device has before the daemon has judged it (usbguard-daemon.conf(5):
# the default is none): `all` and `keep` (the kernel's default, all) let a stick work for
# the moments until the daemon answers, and for good while the daemon is down.
SAFE_AUTHORIZED_DEFAULTS = frozenset({"none", "internal"})
RESTART_UNITS = ("usbguard.service", "usbguard-dbus.service")
INSTALLER = "config/lockdown/install-usbguard.sh"


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
    present = settings.get("PresentDevicePolicy", "apply-policy")
    if present not in JUDGING_PRESENT_POLICIES:
        out.append(Finding("usbguard.daemon-conf:PresentDevicePolicy",
                           f"PresentDevicePolicy={present}: a device plugged in while the tablet was off "
                           "(or while USBGuard was down) is not judged by the rules", DAEMON_CONF,
                           "PresentDevicePolicy=apply-policy"))
    authorized = settings.get("AuthorizedDefault", "none")
    if authorized not in SAFE_AUTHORIZED_DEFAULTS:
        out.append(Finding("usbguard.daemon-conf:AuthorizedDefault",
                           f"AuthorizedDefault={authorized}: a new device works before USBGuard has "
                           "judged it, and while USBGuard is down", DAEMON_CONF, "AuthorizedDefault=none"))
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


def rule_files(view: RootView) -> tuple[tuple[str, str], ...]:
    """Every file the daemon loads rules from, with the prefix its findings carry: the
    RuleFile (findings `usbguard.rules:N`), then, when the configuration names a RuleFolder
    (the Debian package's own file does: /etc/usbguard/rules.d/), each file in it in the
    order the daemon reads them (`usbguard.rules:NAME:N`). A rule dropped in the folder
    counts as much as one in the generated file, so both are judged."""
    settings = daemon_settings(view.read_text(DAEMON_CONF) or "")
    files = [(settings.get("RuleFile", DEFAULT_RULE_FILE), "usbguard.rules")]
    folder = settings.get("RuleFolder", "").rstrip("/")
    if folder:
        files += [(f"{folder}/{name}", f"usbguard.rules:{name}") for name in sorted(view.list_dir(folder))]
    return tuple(files)


def rule_operators(view: RootView, _ctx: Context) -> Sequence[Finding]:
    """Allow rules judge ALL of a device's interfaces (`match-all`, `equals`) and name
    something: a bare `allow` lets every device in."""
    out = []
    for path, prefix in rule_files(view):
        for n, raw in enumerate((view.read_text(path) or "").splitlines(), 1):
            line = raw.strip()
            if not line.startswith("allow"):
                continue
            if line == "allow":
                out.append(Finding(f"{prefix}:{n}", f"rule {n} of {path} is a bare allow: every device "
                                   "is let in", path,
                                   "regenerate the rules: python -m agent.os.usbguard rules"))
            elif m := _PARTIAL_MATCH.search(line):
                out.append(Finding(f"{prefix}:{n}", f"rule {n} of {path} uses with-interface {m.group(1)}: "
                                   "a composite (a keyboard with a USB stick inside) is let in by one "
                                   "interface", path, "use match-all (agent/os/usbguard.py writes it)"))
    return out


def _seconds(value: str) -> float | None:
    """A systemd time span in seconds ("5", "5s", "500ms", "1min"); None: not one we read."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min)?\s*", value)
    if m is None:
        return None
    scale = {"ms": 0.001, "m": 60.0, "min": 60.0}.get(m.group(2) or "s", 1.0)
    return float(m.group(1)) * scale


def restart_bounded(view: RootView, _ctx: Context) -> Sequence[Finding]:
    """USBGuard comes back after a crash, spaced out and without giving up. The package's
    units restart on failure 100 ms apart: where the daemon cannot start (a board with no
    USB bus, seen in the QEMU guest) that is a loop eating the CPU, slow enough on a Pi that
    systemd's start limit (5 in 10 s) never stops it. A spacing of a second or more, and no
    start limit (a device plugged in meanwhile stays unauthorised: AuthorizedDefault above),
    bound it. The drop-ins: config/lockdown/usbguard/*.service.d."""
    out = []
    for unit in RESTART_UNITS:
        main = next((f"{d}/{unit}" for d in UNIT_DIRS if view.exists(f"{d}/{unit}")), None)
        if main is None:
            continue  # not installed: usbguard.service reports it
        files = drop_ins(view, main, tuple(f"{d}/{unit}.d" for d in UNIT_DIRS))
        spacing, where = effective(view, files, "Service", "RestartSec")
        seconds = _seconds(spacing or "100ms")
        if seconds is None or seconds < 1:
            out.append(Finding(f"usbguard.restart:{unit}:RestartSec",
                               f"{unit} restarts {spacing or '100ms (the default)'} after a failure: "
                               "a daemon that cannot start loops", where,
                               f"RestartSec=5s in {ETC_UNITS}/{unit}.d/ ({INSTALLER})"))
        limit, where = effective(view, files, "Unit", "StartLimitIntervalSec")
        if limit is None or _seconds(limit) != 0:
            out.append(Finding(f"usbguard.restart:{unit}:StartLimitIntervalSec",
                               f"{unit} gives up after systemd's start limit: USB policy is no longer "
                               "applied", where,
                               f"StartLimitIntervalSec=0 in {ETC_UNITS}/{unit}.d/ ({INSTALLER})"))
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
