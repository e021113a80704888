"""Who is calling: a process ID (from the bus's credentials) to an app ID.

Never from a method argument: the bus daemon vouches for the caller's pid and uid, the
kernel for /proc/PID/exe. The default identifier maps executable paths to app IDs (issue
4's app catalogue can supply the mapping). Interpreted apps (python3, sh) cannot be told
apart by their executable, so an interpreter must never be in the mapping.

The systemd app scope (`app-<launcher>-<AppID>-<random>.scope`) names an app too, but an
unprivileged user can create a scope under any name in their own systemd instance, so
`CgroupIdentifier` is only safe where a trusted launcher owns scope creation; it is not
the default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

_SCOPE = re.compile(r"app-(?P<body>.+)\.scope")


class CallerIdentifier(Protocol):
    def identify(self, pid: int, uid: int) -> str | None:
        """The caller's app ID, or None when it cannot be known."""


def app_id_from_cgroup(text: str) -> str | None:
    """Parse /proc/PID/cgroup contents for an XDG app scope; None when there is none."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            m = _SCOPE.fullmatch(part)
            if m is None:
                continue
            body = m.group("body").rsplit("-", 1)[0]  # drop the random suffix
            launcher, sep, rest = body.partition("-")
            if sep and "." not in launcher:  # app-<launcher>-<AppID>; app IDs have dots
                body = rest
            return body.replace("\\x2d", "-") or None
    return None


def exe_of(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The executable the kernel ran for `pid`; None if gone or replaced on disk."""
    try:
        target = os.readlink(proc / str(pid) / "exe")
    except OSError:
        return None
    if target.endswith(" (deleted)"):
        return None
    return target


class ExeMapIdentifier:
    """App ID by the caller's executable path, from a fixed mapping."""

    def __init__(self, apps_by_exe: Mapping[str, str], proc: Path = Path("/proc")) -> None:
        self._apps = {os.path.realpath(k): v for k, v in apps_by_exe.items()}
        self._proc = proc

    @classmethod
    def from_catalogue(
        cls, apps_by_exe: Mapping[str, frozenset[str]], proc: Path = Path("/proc")
    ) -> ExeMapIdentifier:
        """From `agent.execgate.catalogue.apps_by_executable`: an executable shared by several
        apps (a launcher, an interpreter) names none of them, so it is left out."""
        return cls({exe: next(iter(ids)) for exe, ids in apps_by_exe.items() if len(ids) == 1}, proc)

    def identify(self, pid: int, uid: int) -> str | None:
        exe = exe_of(pid, self._proc)
        return None if exe is None else self._apps.get(exe)


class CgroupIdentifier:
    """App ID from the caller's systemd app scope (only with a trusted launcher)."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc

    def identify(self, pid: int, uid: int) -> str | None:
        try:
            text = (self._proc / str(pid) / "cgroup").read_text()
        except OSError:
            return None
        return app_id_from_cgroup(text)
