"""Which of the child's apps are running: processes attributed to app IDs, and intervals.

Attribution prefers the systemd unit the desktop launched the app in (GNOME and KDE start
apps as `app-<launcher>-<AppID>-<random>.scope` or `app-<launcher>-<AppID>@<random>.service`,
with `-` inside the ID escaped as `\\x2d`), read from /proc/PID/cgroup; otherwise the
process's executable, looked up in the catalogue (also catching a renamed copy by hash).
The tracker turns successive snapshots into per-app running intervals for agent.core.usage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psutil

from agent.core.usage import Interval
from agent.execgate.catalogue import AppInfo, apps_by_executable, sha256_file

_UNIT = re.compile(r"(?:^|/)(app-[^/]+?\.(?:scope|service))(?:/|$)")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def app_id_from_unit(unit: str, known: Collection[str]) -> str | None:
    """The app ID in a systemd app unit name, if it is one the catalogue knows."""
    if unit.endswith(".scope"):
        parts = unit[len("app-") : -len(".scope")].split("-")
        candidates = parts[:-1]  # the last part is the random suffix
    elif unit.endswith(".service"):
        body = unit[len("app-") : -len(".service")].split("@", 1)[0]
        candidates = body.split("-")
    else:
        return None
    for part in reversed(candidates):  # the ID follows the optional launcher
        app_id = _unescape(part)
        if app_id in known:
            return app_id
    return None


def app_id_from_cgroup(cgroup_text: str, known: Collection[str]) -> str | None:
    """Parse /proc/PID/cgroup (v1 or v2 lines) for an app unit, innermost first."""
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        units = _UNIT.findall(path)
        for unit in reversed(units):
            app_id = app_id_from_unit(unit, known)
            if app_id is not None:
                return app_id
    return None


@dataclass
class Attributor:
    """Maps a process to an app ID using the catalogue; caches hashes by (dev, inode)."""

    apps: Mapping[str, AppInfo]
    _by_exe: dict[str, frozenset[str]] = field(init=False)
    _by_hash: dict[str, str] = field(init=False)
    _hash_cache: dict[tuple[int, int, int], str | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_exe = apps_by_executable(self.apps)
        self._by_hash = {h: a.app_id for a in self.apps.values() for h in a.hashes}

    def app_of(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                from_unit = app_id_from_cgroup(f.read(), self.apps)
        except OSError:
            return None
        if from_unit is not None:
            return from_unit
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return None
        return self.app_of_executable(exe.removesuffix(" (deleted)"), pid)

    def app_of_executable(self, exe: str, pid: int | None = None) -> str | None:
        owners = self._by_exe.get(exe)
        if owners and len(owners) == 1:
            return next(iter(owners))
        if owners:
            return None  # a shared launcher (flatpak, python3): the unit must tell
        for app in self.apps.values():
            if any(exe.startswith(p) for p in app.prefixes):
                return app.app_id
        path = f"/proc/{pid}/exe" if pid is not None else exe  # works even if deleted
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_mtime_ns)
        if key not in self._hash_cache:
            self._hash_cache[key] = sha256_file(path)
        digest = self._hash_cache[key]
        return self._by_hash.get(digest) if digest else None


def running_apps(attributor: Attributor, uids: Collection[int]) -> dict[str, frozenset[int]]:
    """App ID -> pids, for processes whose real uid is one of `uids` (the child's)."""
    found: dict[str, set[int]] = {}
    for proc in psutil.process_iter(["pid", "uids"]):
        uids_info = proc.info.get("uids")
        if uids_info is None or uids_info.real not in uids:
            continue
        app_id = attributor.app_of(proc.info["pid"])
        if app_id is not None:
            found.setdefault(app_id, set()).add(proc.info["pid"])
    return {k: frozenset(v) for k, v in found.items()}


@dataclass(frozen=True)
class AppChanges:
    started: frozenset[str]
    stopped: frozenset[str]


@dataclass
class AppTracker:
    """Turns snapshots of running apps into intervals. `now` comes from the caller's
    trusted clock; the snapshot function is injected (tests pass a fake)."""

    snapshot: Callable[[], Mapping[str, frozenset[int]]]
    running: dict[str, frozenset[int]] = field(default_factory=dict)
    since: dict[str, datetime] = field(default_factory=dict)
    closed: dict[str, list[Interval]] = field(default_factory=dict)

    def poll(self, now: datetime) -> AppChanges:
        current = {k: v for k, v in self.snapshot().items() if v}
        started = frozenset(current) - frozenset(self.running)
        stopped = frozenset(self.running) - frozenset(current)
        for app_id in stopped:
            self.closed.setdefault(app_id, []).append(Interval(self.since.pop(app_id), now))
        for app_id in started:
            self.since[app_id] = now
        self.running = current
        return AppChanges(started, stopped)

    def intervals_at(self, now: datetime) -> dict[str, tuple[Interval, ...]]:
        """Closed intervals plus the open ones closed at `now` (for agent.core.usage.Usage)."""
        out = {k: list(v) for k, v in self.closed.items()}
        for app_id, start in self.since.items():
            out.setdefault(app_id, []).append(Interval(start, max(start, now)))
        return {k: tuple(v) for k, v in out.items()}

    def forget_before(self, cutoff: datetime) -> None:
        """Drop closed intervals ending before `cutoff` (after they are persisted)."""
        for app_id, ivs in list(self.closed.items()):
            kept = [iv for iv in ivs if iv.end >= cutoff]
            if kept:
                self.closed[app_id] = kept
            else:
                del self.closed[app_id]


def pids_of(running: Mapping[str, frozenset[int]], app_ids: Iterable[str]) -> dict[str, frozenset[int]]:
    return {a: running[a] for a in app_ids if a in running}
