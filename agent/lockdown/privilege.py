"""No privilege for the child: its account exists (the agent guards a uid the image
made), it is in no group that grants administration, devices or the network, and no
sudoers rule lets it run anything as another user."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.lockdown.accounts import AGENT_CONF, GROUP, PASSWD, accounts
from agent.lockdown.model import Account, Context, Finding, RootView

# group: why the child must not be in it
FORBIDDEN_GROUPS = {
    "sudo": "runs any command as root through sudo",
    "wheel": "runs any command as root through sudo or su",
    "admin": "runs any command as root through sudo (older Ubuntu)",
    "plugdev": "changes the USB policy (USBGuard's IPC and polkit grant it)",
    "netdev": "changes network connections (NetworkManager, wpa_supplicant)",
    "disk": "reads and writes the raw disk, the agent's state included",
    "adm": "reads the system logs",
}
SHADOW = "/etc/shadow"
SUDOERS = "/etc/sudoers"
_SKIP_WORDS = ("Defaults", "Cmnd_Alias", "Host_Alias", "Runas_Alias")
_INCLUDE = re.compile(r"^[@#](include|includedir)\s+(\S+)")
_COMMENT = re.compile(r"(^|\s)#(?!\d).*$")  # "#1000" is a uid, not a comment


def child_account(_view: RootView, ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"accounts.child:{uid}", f"the agent's settings name the child uid {uid}, "
                "which has no account: the agent would guard nobody", PASSWD,
                f"make the child's account (useradd --uid {uid}) or fix child_uid in "
                f"{AGENT_CONF} or its agent.conf.d drop-ins")
        for uid in ctx.missing_child_uids
    ]


def child_groups(_view: RootView, ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"privilege.group:{child.name}:{group}", f"{child.name} is in {group}: {why}", GROUP,
                f"gpasswd --delete {child.name} {group}")
        for child in ctx.children for group, why in FORBIDDEN_GROUPS.items() if group in child.groups
    ]


def root_login(view: RootView, _ctx: Context) -> Sequence[Finding]:
    """`su` is set-uid in every image: root must have no usable password (locked, `!` or
    `*`), and no other account may have uid 0."""
    out = [
        Finding(f"privilege.uid0:{a.name}", f"{a.name} has uid 0: it is root", PASSWD, f"userdel {a.name}")
        for a in accounts(view).values() if a.uid == 0 and a.name != "root"
    ]
    shadow = view.read_text(SHADOW)
    source, text = (SHADOW, shadow) if shadow is not None else (PASSWD, view.read_text(PASSWD))
    root_hash = next((row[1] for row in _fields(text) if row[0] == "root" and len(row) > 1), "!")
    if shadow is None and root_hash == "x":
        root_hash = "!"  # the password is in a shadow file there is not: none to type
    if not root_hash.startswith(("!", "*")):
        out.append(Finding("privilege.root-password", "root has a password (or needs none): "
                           "`su` gives root to whoever knows or guesses it", source, "passwd --lock root"))
    return out


def _fields(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines() if line and not line.startswith("#")]


def sudoers_files(view: RootView) -> tuple[str, ...]:
    """/etc/sudoers and what it includes (sudo skips names with a dot or ending in ~)."""
    files = [SUDOERS]
    seen: set[str] = set()
    while len(seen) < len(files):
        path = next(p for p in files if p not in seen)
        seen.add(path)
        for line in _logical_lines(view.read_text(path)):
            match = _INCLUDE.match(line)
            if match is None:
                continue
            kind, target = match.groups()
            targets = [target] if kind == "include" else [
                f"{target}/{n}" for n in view.list_dir(target) if "." not in n and not n.endswith("~")]
            files.extend(t for t in targets if t not in files)
    return tuple(files)


def _logical_lines(text: str | None) -> list[str]:
    joined = (text or "").replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _user_aliases(lines: list[str]) -> dict[str, set[str]]:
    aliases: dict[str, set[str]] = {}
    for line in lines:
        if line.startswith("User_Alias"):
            for part in line.removeprefix("User_Alias").split(":"):
                name, _, members = part.partition("=")
                aliases[name.strip()] = {m.strip() for m in members.split(",")}
    return aliases


def _matches(item: str, child: Account, aliases: dict[str, set[str]], depth: int = 0) -> bool:
    if item.startswith("!"):
        return False
    if item in ("ALL", child.name, f"#{child.uid}"):
        return True
    if item.startswith("%"):
        return item.lstrip("%:") in child.groups
    if item in aliases and depth < 8:
        return any(_matches(m, child, aliases, depth + 1) for m in aliases[item])
    return False


def sudo_rules(view: RootView, ctx: Context) -> Sequence[Finding]:
    out: dict[str, Finding] = {}
    files = {path: [_COMMENT.sub("", line).strip() for line in _logical_lines(view.read_text(path))
                    if not _INCLUDE.match(line)] for path in sudoers_files(view)}
    aliases = _user_aliases([line for lines in files.values() for line in lines])
    for path, lines in files.items():
        for line in lines:
            if not line or line.startswith((*_SKIP_WORDS, "User_Alias")) or "=" not in line:
                continue
            users = line.split(None, 1)[0].split(",")
            for child in ctx.children:
                key = f"privilege.sudoers:{child.name}:{path}"
                if key not in out and any(_matches(u.strip(), child, aliases) for u in users):
                    out[key] = Finding(key, f"`{line}` lets {child.name} run commands as another user",
                                       path, "remove the rule (the child never has sudo)")
    return list(out.values())
