"""polkit refuses the child: a rules file that names the child's group answers NO to the
actions that change time, network, VPNs, accounts, software, services and the USB policy;
it sorts before every other rules file (polkit asks them by name, the first answer
wins); and every child account is in that group."""

from __future__ import annotations

from collections.abc import Sequence

from agent.lockdown.model import Context, Finding, RootView
from agent.lockdown.units import conf_files

ETC_RULES = "/etc/polkit-1/rules.d"
RULES_DIRS = (ETC_RULES, "/usr/share/polkit-1/rules.d")  # /etc hides a namesake in /usr/share
CHILD_GROUP = "minormode-child"
CHILD_RULES = "10-minormode-child.rules"
# what the child must not change: the action-id prefixes the rule must refuse
REFUSED = {
    "time and timezone": "org.freedesktop.timedate1.",
    "network connections and VPNs": "org.freedesktop.NetworkManager.",
    "network links": "org.freedesktop.network1.",
    "DNS settings": "org.freedesktop.resolve1.",
    "accounts": "org.freedesktop.accounts.",
    "installed software": "org.freedesktop.packagekit.",
    "services": "org.freedesktop.systemd1.",
    "the USB policy": "org.usbguard.",
    "the agent's adult actions (more time, pairing)": "org.minormode.",
}
FIX = f"install config/lockdown/etc/polkit-1/rules.d/{CHILD_RULES} into {ETC_RULES}"


def rules_files(view: RootView) -> tuple[tuple[str, str], ...]:
    """(name, path) of every rules file, in the order polkit evaluates them."""
    return tuple((path.rpartition("/")[2], path) for path in conf_files(view, RULES_DIRS, ".rules"))


def _child_rule(view: RootView) -> tuple[str, str, str] | None:
    """The first rules file that names the child's group: (name, path, text)."""
    for name, path in rules_files(view):
        text = view.read_text(path) or ""
        if f'"{CHILD_GROUP}"' in text and "polkit.Result.NO" in text:
            return name, path, text
    return None


def child_refused(view: RootView, _ctx: Context) -> Sequence[Finding]:
    found = _child_rule(view)
    if found is None:
        return [Finding("polkit.child-rule", f"no polkit rule refuses the group {CHILD_GROUP}: the child "
                        "may change the time, the network, accounts or software when asked for a password",
                        f"{ETC_RULES}/{CHILD_RULES}", FIX)]
    _name, path, text = found
    return [
        Finding(f"polkit.child-rule:{prefix}", f"the child's rule does not refuse {what} ({prefix}*)", path,
                f"add \"{prefix}\" to the refused prefixes ({FIX})")
        for what, prefix in REFUSED.items() if f'"{prefix}"' not in text
    ]


def child_rule_first(view: RootView, _ctx: Context) -> Sequence[Finding]:
    found = _child_rule(view)
    if found is None:
        return []  # reported by polkit.child-rule
    first = found[0]
    return [
        Finding(f"polkit.order:{name}", f"{name} sorts before {first}: polkit asks it first, so it "
                "can allow what the child's rule refuses", path, f"rename it after {first}, or remove it")
        for name, path in rules_files(view) if name < first
    ]


def child_in_group(_view: RootView, ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"polkit.child-group:{child.name}", f"{child.name} is not in {CHILD_GROUP}: "
                "the polkit rule does not refuse it", "/etc/group",
                f"usermod --append --groups {CHILD_GROUP} {child.name} (config/lockdown/install.sh)")
        for child in ctx.children if CHILD_GROUP not in child.groups
    ]
