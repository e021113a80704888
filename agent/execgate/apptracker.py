"""Which of the child's apps are running: processes attributed to app IDs, and intervals.

A process is the app whose program runs in it, as the exec gate judged it: the inode of
/proc/PID/exe (an app's executable or a file of its Flatpak tree), else its path (an
upgrade renamed a new inode over it), its Flatpak prefix, or its content hash (a renamed
copy). For a script app the program is its `#!` interpreter, so the script the kernel
handed it (argv[1] or argv[2], which the child cannot choose: the gate lets the child run
an interpreter only as an allowed script's next step) picks the app. The systemd unit the
desktop started it in (`app-<launcher>-<AppID>-<random>.scope` or
`app-<launcher>-<AppID>@<random>.service`, `-` escaped as `\\x2d`, read from
/proc/PID/cgroup) is only a hint: it chooses among the apps of a shared launcher and is
ignored when it disagrees (agent.core.attribution). The tracker turns successive
snapshots into per-app running intervals for agent.core.usage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agent.core.attribution import attribute
from agent.core.usage import Interval
from agent.execgate.catalogue import AppInfo, apps_by_executable, parse_shebang, sha256_file
from agent.execgate.loop import uid_of

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


Key = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class Attributor:
    """Maps a process to an app ID by its verified program (agent.core.attribution);
    caches hashes by (dev, inode, mtime)."""

    apps: Mapping[str, AppInfo]
    stat: Callable[[str], os.stat_result] = os.stat
    _by_exe: dict[str, frozenset[str]] = field(init=False)
    _by_inode: dict[Key, frozenset[str]] = field(init=False)
    _scripts_of: dict[Key, frozenset[str]] = field(init=False)  # interpreter -> script apps
    _by_hash: dict[str, frozenset[str]] = field(init=False)
    _hash_cache: dict[tuple[int, int, int], str | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_exe = apps_by_executable(self.apps)
        by_inode: dict[Key, set[str]] = {}
        scripts_of: dict[Key, set[str]] = {}
        by_hash: dict[str, set[str]] = {}
        for app in self.apps.values():
            for path in (*app.executables, *app.tree_files):
                key = self._key(path)
                if key is not None:
                    by_inode.setdefault(key, set()).add(app.app_id)
            for path in app.interpreters:
                key = self._key(path)
                if key is not None:
                    scripts_of.setdefault(key, set()).add(app.app_id)
            for digest in app.hashes:
                by_hash.setdefault(digest, set()).add(app.app_id)
        self._by_inode = {k: frozenset(v) for k, v in by_inode.items()}
        self._scripts_of = {k: frozenset(v) for k, v in scripts_of.items()}
        self._by_hash = {k: frozenset(v) for k, v in by_hash.items()}

    def _key(self, path: str) -> Key | None:
        try:
            st = self.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def app_of(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                hint = app_id_from_cgroup(f.read(), self.apps)
        except OSError:
            return None
        return attribute(self.owners_of(pid), hint)

    def owners_of(self, pid: int) -> frozenset[str]:
        """The apps whose verified program runs in `pid` (empty: none, or it is gone)."""
        exe = f"/proc/{pid}/exe"  # stat and open work even if the file was deleted
        key = self._key(exe)
        if key is None:
            return frozenset()
        owners = self._by_inode.get(key)
        if owners:
            return owners
        scripts = self._scripts_of.get(key)
        if scripts:
            return self._script_apps(pid, scripts)
        try:
            path = os.readlink(exe).removesuffix(" (deleted)")
        except OSError:
            return frozenset()
        return self.owners_of_path(path, exe)

    def owners_of_path(self, path: str, opened: str | None = None) -> frozenset[str]:
        """The apps of a program not known by inode: by path, Flatpak prefix, or hash
        (`opened` is where to read it, /proc/PID/exe for a running process)."""
        owners = self._by_exe.get(path)
        if owners:
            return owners
        for app in self.apps.values():
            if any(path.startswith(p) for p in app.prefixes):
                return frozenset({app.app_id})
        where = opened or path
        try:
            st = self.stat(where)
        except OSError:
            return frozenset()
        cache_key = (st.st_dev, st.st_ino, st.st_mtime_ns)
        if cache_key not in self._hash_cache:
            self._hash_cache[cache_key] = sha256_file(where)
        digest = self._hash_cache[cache_key]
        return self._by_hash.get(digest, frozenset()) if digest else frozenset()

    def _script_apps(self, pid: int, scripts: frozenset[str]) -> frozenset[str]:
        """An interpreter process: the script apps (among `scripts`) whose script sits
        where the kernel put it in argv (after the `#!` line's words; what follows the
        script is the child's to choose, so only that one place counts)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return frozenset()
        found: set[str] = set()
        here: dict[int, Key | None] = {}  # argv index -> the file it names
        for app_id in scripts:
            for script in self.apps[app_id].executables:
                index = script_argv_index(script)
                if index is None or index >= len(argv) or not argv[index]:
                    continue
                if index not in here:
                    name = os.fsdecode(argv[index])
                    here[index] = self._key(name if name.startswith("/") else f"/proc/{pid}/cwd/{name}")
                if here[index] is not None and here[index] == self._key(script):
                    found.add(app_id)
        return frozenset(found)


def script_argv_index(script: str) -> int | None:
    """Where a script's path is in its interpreter's argv: the kernel passes the `#!`
    line's words after the interpreter as one argument; `env X` hands X the script as
    argv[1] (`env -S "X A B"` after A and B). None for a non-script."""
    try:
        with open(script, "rb") as f:
            words = parse_shebang(f.read(256))
    except OSError:
        return None
    if not words:
        return None
    if os.path.basename(words[0]) != "env":
        return 2 if len(words) > 1 else 1
    rest = words[1:]
    if rest and rest[0] == "-S":
        return len(rest) - 1  # X and its words: X is argv[0]
    return 1


def running_apps(attributor: Attributor, uids: Collection[int]) -> dict[str, frozenset[int]]:
    """App ID -> pids, for processes whose real uid is one of `uids` (the child's): every
    /proc/PID's status, as the gate reads a thread's (`uid_of`); a process that ends while
    it is read is not running."""
    found: dict[str, set[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            if uid_of(pid) not in uids:
                continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        app_id = attributor.app_of(pid)
        if app_id is not None:
            found.setdefault(app_id, set()).add(pid)
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
