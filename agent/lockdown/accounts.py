"""The child's accounts as the root file system defines them: /etc/passwd and /etc/group,
and the uids the agent's settings name (`child_uid` in /etc/minormode/agent.conf and its
agent.conf.d drop-ins, layered as the agent layers them)."""

from __future__ import annotations

from collections.abc import Iterable

from agent.core.layered import SettingsError, layered_files, merged, read_layers
from agent.lockdown.model import Account, RootView

PASSWD = "/etc/passwd"
GROUP = "/etc/group"
AGENT_CONF = "/etc/minormode/agent.conf"


class UnknownAccountError(ValueError):
    """A child named on the command line that the root file system does not have."""


def _rows(text: str | None, width: int) -> list[list[str]]:
    rows = []
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= width and not line.startswith(("#", "+", "-")):
            rows.append(fields)
    return rows


def accounts(view: RootView) -> dict[str, Account]:
    """Every account in /etc/passwd with its groups (primary and supplementary) by name."""
    groups = _rows(view.read_text(GROUP), 4)
    gid_names = {row[2]: row[0] for row in groups}
    out = {}
    for name, _pw, uid, gid, *_rest in _rows(view.read_text(PASSWD), 7):
        if not uid.isdigit():
            continue
        member_of = {row[0] for row in groups if name in row[3].split(",")}
        if gid in gid_names:
            member_of.add(gid_names[gid])
        out[name] = Account(name=name, uid=int(uid), groups=frozenset(member_of))
    return out


def configured_child_uids(view: RootView) -> tuple[int, ...]:
    """The uids in the agent's `child_uid` setting (empty: the agent's default). Settings the
    agent would refuse count as none: with them the agent does not start, and the child's
    sessions stay locked (fail closed), so the audit checks the default child instead."""
    def read(path: str) -> bytes:
        data = view.read_bytes(path)
        if data is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return data

    def list_dir(path: str) -> tuple[str, ...]:
        if not view.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        return view.list_dir(path)

    if not view.exists(AGENT_CONF):
        return ()
    try:
        setting = merged(read_layers(layered_files(AGENT_CONF, list_dir), read)).get("child_uid")
    except SettingsError:
        return ()
    uids = setting.value if setting is not None else []
    if not isinstance(uids, list):
        return ()
    return tuple(u for u in uids if isinstance(u, int) and not isinstance(u, bool) and u > 0)


def children_by_uid(view: RootView, uids: Iterable[int]) -> tuple[tuple[Account, ...], tuple[int, ...]]:
    """The accounts with these uids, and the uids no account has (which the audit reports:
    the agent would guard an account that is not there)."""
    by_uid = {a.uid: a for a in accounts(view).values()}
    wanted = tuple(dict.fromkeys(uids))
    return (tuple(by_uid[u] for u in wanted if u in by_uid), tuple(u for u in wanted if u not in by_uid))


def children_by_name(view: RootView, names: Iterable[str]) -> tuple[Account, ...]:
    known = accounts(view)
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownAccountError(f"--child-user {', '.join(missing)}: no such account in {PASSWD}")
    return tuple(known[n] for n in names)
