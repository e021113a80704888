"""Is a session's screen really locked? A fact the child's own programs cannot claim alone.

logind's LockedHint is set by the locker, which runs as the child, so anything of the
child's can set it (`loginctl lock-session` needs no locker; a D-Bus call to the session's
SetLockedHint does it). `LockerProcesses` adds a fact root reads from /proc: a locker
program from a configured, root-owned path (`--locker`, e.g. /usr/bin/swaylock) runs under
the child's uid. The child cannot make a process whose /proc/PID/exe is that file without
running that very program (a copy elsewhere, the loader running it, a memfd: each shows a
different exe). A configured path that the child could replace (not root-owned, or
writable by others) never counts.

What it does not prove: that the locker covers the screen (a locker started against a
nested or absent display exits at once, so it rarely lingers, but a compositor that
reported its lock would be the stronger fact). Without any locker configured nothing is
verifiable, and the enforcer ends a session that stays in a lock past its grace.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from agent.os.logind import SessionState

log = logging.getLogger("minormode.lockproof")


def _trustworthy(path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and stat.S_ISREG(st.st_mode)


class LockerProcesses:
    def __init__(self, lockers: Iterable[Path], child_uids: frozenset[int],
                 proc: Path = Path("/proc")) -> None:
        self.lockers = tuple(Path(os.path.realpath(p)) for p in lockers)
        self.child_uids = child_uids
        self.proc = proc
        for p in self.lockers:
            if not _trustworthy(p):
                log.warning("locker %s is missing or not root-owned: it proves nothing", p)

    def running(self) -> list[int]:
        """PIDs of configured lockers running as the child."""
        trusted = {str(p) for p in self.lockers if _trustworthy(p)}
        if not trusted:
            return []
        found = []
        for name in os.listdir(self.proc):
            if not name.isdigit():
                continue
            try:
                if os.stat(self.proc / name).st_uid not in self.child_uids:
                    continue
                exe = os.readlink(self.proc / name / "exe")
            except OSError:
                continue  # gone, or a kernel thread
            if exe in trusted:
                found.append(int(name))
        return found

    def __call__(self, session: SessionState) -> bool:
        """The session is verifiably locked: its hint says so and a locker runs."""
        return session.locked and bool(self.running())
