"""The exec gate's verdict table: an immutable snapshot the gate thread reads without locks.

Built off the gate's thread (by the daemon) from the app catalogue and the Decision's
AppAccess whenever either changes, then swapped in by reference. `judge` is the whole
verdict rule; it is pure given a hasher, so it is tested without the kernel.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent.core.decision import AppAccess
from agent.execgate.base import is_loader_name, not_base_reason
from agent.execgate.catalogue import AppInfo, script_chain, walk_executables


class GateReason(StrEnum):
    """Why the gate denied an exec (app verdict reasons come from AppBlockReason)."""

    CHILD_WRITABLE = "child_writable"  # under home, /tmp, removable media ...
    UNKNOWN = "unknown"  # not an app, not the OS base
    HASH_TIMEOUT = "hash_timeout"  # could not hash in time: denied for the child
    ERROR = "error"  # the gate failed on this event: denied for the child
    LOADER_RUN = "loader_run"  # the dynamic loader run as a program, not as a program's step
    OUTSIDE_SANDBOX = "outside_sandbox"  # a base tree's shell or interpreter, run on the host


@dataclass(frozen=True, slots=True)
class FileRule:
    """The verdict for one file: an app's (app_id set) or the OS base's (app_id None)."""

    app_id: str | None
    allowed: bool
    reason: str | None = None
    # Allowed to the child only inside a sandbox (a mount namespace not the gate's): a
    # base tree's shell, interpreter or tool that `base.py` keeps out of the host's base.
    sandbox_only: bool = False


BASE_RULE = FileRule(None, True)
SANDBOX_RULE = FileRule(None, True, sandbox_only=True)


@dataclass(frozen=True)
class GateConfig:
    """Device settings for the gate (provisioning, not the guardian's policy)."""

    # The gate restricts regular users (Debian's adduser range) and any uid listed in
    # `also_restricted`; root, system services, nobody and systemd's dynamic users are
    # never blocked. `exempt_uids` lifts a regular account (e.g. a guardian's own).
    restricted_uids: tuple[int, int] = (1000, 59999)
    also_restricted: frozenset[int] = frozenset()
    exempt_uids: frozenset[int] = frozenset()
    base_paths: tuple[str, ...] = ()  # files the child's session needs (real paths)
    base_prefixes: tuple[str, ...] = ()  # directories of OS helpers the session needs
    base_trees: tuple[str, ...] = ()  # directories whose executables are base, by inode
    # (e.g. /var/lib/flatpak/runtime/: seen under sandbox paths, so not by prefix)
    # The dynamic loaders (`loader_paths()`; those in `base_trees` are found by name):
    # the child's exec of one passes only as a dynamic program's second step (README.md).
    loaders: tuple[str, ...] = ()
    child_writable: tuple[str, ...] = (
        "/run/media/",
        "/home/",
        "/tmp/",
        "/var/tmp/",
        "/media/",
        "/run/user/",
        "/dev/shm/",
    )
    hash_size_cap: int = 64 * 1024 * 1024  # bigger unknown files are not hashed: denied
    hash_deadline: float = 0.2  # seconds to hash an unknown file before giving up


@dataclass(frozen=True)
class GateTable:
    generation: int
    config: GateConfig
    by_inode: Mapping[tuple[int, int], FileRule] = field(default_factory=dict)
    by_hash: Mapping[str, FileRule] = field(default_factory=dict)
    by_path: Mapping[str, FileRule] = field(default_factory=dict)  # after an upgrade's new inode
    app_prefixes: tuple[tuple[str, FileRule], ...] = ()
    # An allowed script's inode -> the inodes the kernel execs next for it in the same
    # thread (its `#!` interpreter; for `#!/usr/bin/env X`, env then X). Interpreters are
    # allowed to the child only as that next step, never when called directly.
    script_chains: Mapping[tuple[int, int], tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # The dynamic loaders' inodes: never cached, never base, judged by `judge`'s first rule.
    loaders: frozenset[tuple[int, int]] = frozenset()

    def is_system(self, uid: int) -> bool:
        """True for uids the gate never blocks (root, system services, exempt accounts)."""
        c = self.config
        low, high = c.restricted_uids
        restricted = low <= uid <= high or uid in c.also_restricted
        return not restricted or uid in c.exempt_uids


@dataclass(frozen=True, slots=True)
class Judgement:
    allow: bool
    cache: bool  # allowed for every uid: safe to cache with an ignore mark
    app_id: str | None = None
    reason: str | None = None


def _merge(old: FileRule | None, new: FileRule) -> FileRule:
    """A file shared by several apps runs if any of them may run."""
    if old is None or (new.allowed and not old.allowed):
        return new
    return old


def build_table(
    apps: Mapping[str, AppInfo],
    access: AppAccess,
    config: GateConfig,
    generation: int,
    stat: Callable[[str], os.stat_result] = os.stat,
    chain_of: Callable[[str], tuple[str, ...]] = script_chain,
) -> GateTable:
    """Verdicts for every app's files under `access`; missing files are skipped."""
    by_inode: dict[tuple[int, int], FileRule] = {}
    by_hash: dict[str, FileRule] = {}
    by_path: dict[str, FileRule] = {}
    prefixes: list[tuple[str, FileRule]] = []
    chains: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}

    def add_chain(script: str) -> None:
        try:
            key = _key(stat(script))
            steps = tuple(_key(stat(p)) for p in chain_of(script))
        except OSError:
            return
        if steps:
            chains[key] = steps

    def add_inode(path: str, rule: FileRule) -> None:
        by_path[path] = _merge(by_path.get(path), rule)
        try:
            st = stat(path)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        by_inode[key] = _merge(by_inode.get(key), rule)

    for app in apps.values():
        if app.needed_by_session:
            rule = FileRule(app.app_id, True)
        else:
            verdict = access.verdict(app.app_id, app.categories)
            reason = verdict.reason.value if verdict.reason else None
            rule = FileRule(app.app_id, verdict.allowed, reason)
        for exe in (*app.executables, *app.tree_files):
            add_inode(exe, rule)
        if rule.allowed and app.interpreters:  # a script app runs its interpreter: README.md
            for exe in app.executables:
                add_chain(exe)
        for digest in app.hashes:
            by_hash[digest] = _merge(by_hash.get(digest), rule)
        prefixes.extend((p, rule) for p in app.prefixes)
    base_files = list(config.base_paths)
    loader_files = list(config.loaders)
    sandbox_files: list[str] = []
    for tree in config.base_trees:  # e.g. a Flatpak runtime: bash and python3 inside
        for path in walk_executables(tree):
            if is_loader_name(path):
                loader_files.append(path)
            elif not_base_reason(path) is not None:
                sandbox_files.append(path)
            else:
                base_files.append(path)
    loaders: set[tuple[int, int]] = set()
    for path in loader_files:
        try:
            loaders.add(_key(stat(path)))
        except OSError:
            continue
    for path in base_files:  # the session's needs win over an app's verdict
        try:
            st = stat(path)
        except OSError:
            continue
        by_inode[(st.st_dev, st.st_ino)] = BASE_RULE
        by_path[path] = BASE_RULE
        add_chain(path)
    prefixes.sort(key=lambda item: len(item[0]), reverse=True)
    for path in sandbox_files:
        try:
            st = stat(path)
        except OSError:
            continue
        by_inode[(st.st_dev, st.st_ino)] = SANDBOX_RULE
    for key in loaders:  # a loader listed as base (or an app's file) must not be cached
        by_inode.pop(key, None)
    return GateTable(generation, config, by_inode, by_hash, by_path, tuple(prefixes), chains,
                     frozenset(loaders))


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


LOADER_GLOBS = (
    "/lib/ld-linux*.so*",
    "/lib64/ld-linux*.so*",
    "/usr/lib/*/ld-linux*.so*",
    "/lib/ld-musl-*.so*",
)


def loader_paths(globs: Iterable[str] = LOADER_GLOBS) -> tuple[str, ...]:
    """The ELF program interpreters (dynamic loaders), resolved: the kernel opens the
    loader for exec on every dynamic exec, and a loader run as a program maps any file
    it is given without an exec of that file (so the gate judges it: `judge`)."""
    found = {os.path.realpath(p) for pattern in globs for p in glob.glob(pattern)}
    return tuple(sorted(p for p in found if os.path.isfile(p)))


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path.startswith(p) for p in prefixes)


def judge(
    table: GateTable,
    uid: int,
    key: tuple[int, int],
    path: Callable[[], str],
    content_hash: Callable[[], str | None],
    loader_step: bool = False,
    in_sandbox: Callable[[], bool] = lambda: False,
) -> Judgement:
    """The verdict for one exec. `path`, `content_hash` and `in_sandbox` are called only
    when needed (the hash may raise TimeoutError: denied for the child). `loader_step`:
    this thread is exec'ing a dynamic program that already passed, so a loader open is
    its step. `in_sandbox`: the thread is in a mount namespace other than the gate's."""
    if key in table.loaders:  # never cached: the child's next open of it may be a run
        if loader_step or table.is_system(uid):
            return Judgement(True, False)
        return Judgement(False, False, None, GateReason.LOADER_RUN.value)
    rule = table.by_inode.get(key)
    if rule is not None and rule.sandbox_only:  # never cached: the host's exec is judged
        if table.is_system(uid) or in_sandbox():
            return Judgement(True, False)
        return Judgement(False, False, None, GateReason.OUTSIDE_SANDBOX.value)
    if rule is not None and rule.allowed:
        return Judgement(True, True, rule.app_id)
    if table.is_system(uid):
        return Judgement(True, False, rule.app_id if rule else None)
    if rule is not None:
        return Judgement(False, False, rule.app_id, rule.reason)
    where = path()
    if _under(where, table.config.child_writable):
        return Judgement(False, False, None, GateReason.CHILD_WRITABLE.value)
    by_path = table.by_path.get(where)  # e.g. the package was upgraded: a new inode
    if by_path is not None:
        return Judgement(by_path.allowed, by_path.allowed, by_path.app_id, by_path.reason)
    for prefix, prefix_rule in table.app_prefixes:
        if where.startswith(prefix):
            return Judgement(prefix_rule.allowed, prefix_rule.allowed, prefix_rule.app_id, prefix_rule.reason)
    if _under(where, table.config.base_prefixes):
        return Judgement(True, True)
    try:
        digest = content_hash()
    except TimeoutError:
        return Judgement(False, False, None, GateReason.HASH_TIMEOUT.value)
    copied = table.by_hash.get(digest) if digest else None
    if copied is not None:
        return Judgement(copied.allowed, copied.allowed, copied.app_id, copied.reason)
    return Judgement(False, False, None, GateReason.UNKNOWN.value)


def hash_fd(fd: int, size_cap: int, deadline: float, chunk: int = 1 << 20) -> str | None:
    """sha256 of an open file, bounded: None if larger than `size_cap`; TimeoutError after
    `deadline` seconds (checked between chunks). Reads with pread, so the fd's offset stays."""
    size = os.fstat(fd).st_size
    if size > size_cap:
        return None
    end = time.monotonic() + deadline
    digest = hashlib.sha256()
    offset = 0
    while True:
        data = os.pread(fd, chunk, offset)
        if not data:
            return digest.hexdigest()
        digest.update(data)
        offset += len(data)
        if time.monotonic() > end:
            raise TimeoutError(f"hashing fd {fd} took longer than {deadline} s")


# JSON form, for the gate process (agent.execgate.supervisor).
def table_to_json(table: GateTable) -> dict[str, Any]:
    c = table.config
    return {
        "generation": table.generation,
        "config": {
            "restricted_uids": list(c.restricted_uids),
            "also_restricted": sorted(c.also_restricted),
            "exempt_uids": sorted(c.exempt_uids),
            "base_paths": list(c.base_paths),
            "base_prefixes": list(c.base_prefixes),
            "base_trees": list(c.base_trees),
            "loaders": list(c.loaders),
            "child_writable": list(c.child_writable),
            "hash_size_cap": c.hash_size_cap,
            "hash_deadline": c.hash_deadline,
        },
        "by_inode": [[d, i, r.app_id, r.allowed, r.reason, r.sandbox_only]
                     for (d, i), r in table.by_inode.items()],
        "by_hash": [[h, r.app_id, r.allowed, r.reason] for h, r in table.by_hash.items()],
        "by_path": [[p, r.app_id, r.allowed, r.reason] for p, r in table.by_path.items()],
        "app_prefixes": [[p, r.app_id, r.allowed, r.reason] for p, r in table.app_prefixes],
        "script_chains": [[d, i, [list(k) for k in steps]] for (d, i), steps in table.script_chains.items()],
        "loaders": [list(k) for k in sorted(table.loaders)],
    }


def table_from_json(data: Mapping[str, Any]) -> GateTable:
    c = data["config"]
    config = GateConfig(
        restricted_uids=(int(c["restricted_uids"][0]), int(c["restricted_uids"][1])),
        also_restricted=frozenset(int(u) for u in c["also_restricted"]),
        exempt_uids=frozenset(int(u) for u in c["exempt_uids"]),
        base_paths=tuple(c["base_paths"]),
        base_prefixes=tuple(c["base_prefixes"]),
        base_trees=tuple(c["base_trees"]),
        loaders=tuple(c["loaders"]),
        child_writable=tuple(c["child_writable"]),
        hash_size_cap=int(c["hash_size_cap"]),
        hash_deadline=float(c["hash_deadline"]),
    )
    return GateTable(
        generation=int(data["generation"]),
        config=config,
        by_inode={(int(d), int(i)): FileRule(a, bool(ok), r, bool(sb))
                  for d, i, a, ok, r, sb in data["by_inode"]},
        by_hash={h: FileRule(a, bool(ok), r) for h, a, ok, r in data["by_hash"]},
        by_path={p: FileRule(a, bool(ok), r) for p, a, ok, r in data["by_path"]},
        app_prefixes=tuple((p, FileRule(a, bool(ok), r)) for p, a, ok, r in data["app_prefixes"]),
        script_chains={(int(d), int(i)): tuple((int(kd), int(ki)) for kd, ki in steps)
                       for d, i, steps in data["script_chains"]},
        loaders=frozenset((int(d), int(i)) for d, i in data["loaders"]),
    )
