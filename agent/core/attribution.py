"""Which app a running process counts as: the one whose verified program runs in it.

The child names its own systemd units (`systemd-run --user --unit=app-<any app>-1.scope
game`), so a unit name cannot say which app a process is. What the exec gate judged can:
the inode (or content hash) of the program the kernel exec'd, looked up in the installed
apps. The unit name is a hint that may only choose among the apps that program belongs
to (a launcher shared by several apps); a hint that disagrees is ignored.
"""

from __future__ import annotations

from collections.abc import Collection


def attribute(owners: Collection[str], hint: str | None) -> str | None:
    """The app of a process whose program belongs to `owners` (the app IDs whose verified
    executable it is), given the app its unit name claims (`hint`).

    One owner: that app, whatever the unit says. Several (a shared launcher): the hint if
    it is one of them, else none (the time is then nobody's: it still counts as screen
    time, never as an always-allowed app's). No owner: none, whatever the unit says."""
    if len(owners) == 1:
        return next(iter(owners))
    if hint is not None and hint in owners:
        return hint
    return None
