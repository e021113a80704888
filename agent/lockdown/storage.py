"""Where the child's files and the agent's state live (issue 16, item 6), read from /etc/fstab.

A child who fills the disk must not stop the agent: /var/lib/minormode is a file system of
its own (a partition by LABEL=, UUID=, PARTUUID= or a device path, not a bind mount or a
tmpfs, which would share or lose the state), mounted nosuid,nodev,noexec like every place
the child writes. The child's places (/home, /var/tmp, /dev/shm) are noexec,nosuid,nodev, so
a downloaded program cannot be run from them (the exec gate judges what runs; this is the
second lock). /tmp is left to tmp.mount, whose noexec drop-in the agent's package ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.lockdown.model import Context, Finding, RootView

FSTAB = "/etc/fstab"
STATE = "/var/lib/minormode"
CHILD_PLACES = ("/home", "/var/tmp", "/dev/shm")
LOCKED = ("nosuid", "nodev", "noexec")
FIX = "image-build/overlay/etc/fstab"


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    options: frozenset[str]
    line: int


def fstab_mounts(text: str) -> dict[str, Mount]:
    """Mount point -> its entry (a later line for the same point wins, as at boot)."""
    out: dict[str, Mount] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 3:
            continue
        options = frozenset(fields[3].split(",")) if len(fields) > 3 else frozenset()
        target = fields[1].rstrip("/") or "/"
        out[target] = Mount(fields[0], target, fields[2], options, number)
    return out


def _own_device(mount: Mount) -> bool:
    return (mount.source.startswith(("LABEL=", "UUID=", "PARTUUID=", "PARTLABEL=", "/dev/"))
            and mount.fstype not in ("none", "tmpfs") and "bind" not in mount.options)


def state_partition(view: RootView, _ctx: Context) -> Sequence[Finding]:
    mounts = fstab_mounts(view.read_text(FSTAB) or "")
    state = mounts.get(STATE)
    if state is None or not _own_device(state):
        where = "not mounted" if state is None else f"{state.source} ({state.fstype}, line {state.line})"
        return [Finding("storage.state", f"the agent's state ({STATE}) is {where}: a child who fills "
                        "the disk fills the agent's, which then cannot write or restart", FSTAB,
                        f"a partition of its own: {FIX}")]
    missing = [o for o in LOCKED if o not in state.options]
    if missing:
        return [Finding("storage.state:options", f"{STATE} (line {state.line}) is mounted without "
                        f"{','.join(missing)}", FSTAB, f"add {','.join(missing)}: {FIX}")]
    return []


def child_places(view: RootView, _ctx: Context) -> Sequence[Finding]:
    mounts = fstab_mounts(view.read_text(FSTAB) or "")
    out = []
    for place in CHILD_PLACES:
        mount = mounts.get(place)
        missing = list(LOCKED) if mount is None else [o for o in LOCKED if o not in mount.options]
        if missing:
            how = ("has no line" if mount is None
                   else f"(line {mount.line}) is mounted without {','.join(missing)}")
            out.append(Finding(f"storage.noexec:{place}", f"{place} {how}: a program the child "
                               "downloads there could be run", FSTAB, f"{','.join(LOCKED)}: {FIX}"))
    return out
