"""Damaged files at start and a full disk at run time: classify, set aside, never stop.

A state file the agent reads at start (a SQLite store, a key) that is damaged must not
keep the agent from starting (systemd would restart it into the same failure, and the
child would be free meanwhile). `check_sqlite` runs SQLite's `quick_check` on a store
before it is opened; a file SQLite calls corrupt or not a database is renamed aside
(`<name>.damaged-<n>`, with its -wal and -shm) and a fresh one is made in its place. Keys
the same, through `set_aside`. Every file set aside is listed in `set_aside_log()`, which
the daemon records (in the `agent_start` event) and logs. At most `KEEP_DAMAGED` copies of
each file are kept, so a file damaged at every start cannot fill the disk either.

A full disk is not damage: `is_storage_failure` tells SQLite's "full" and I/O errors (and
ENOSPC / EIO from plain writes) apart from corruption, so the callers keep going from
memory (`agent.runtime.agent.Agent`, `QueueingSink`) instead of setting a healthy file aside.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_DAMAGED = 3
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_FAILURE_CODES = {10, 13}  # SQLITE_IOERR, SQLITE_FULL
_FAILURE_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS}


@dataclass(frozen=True)
class SetAside:
    path: Path
    moved_to: Path
    why: str


_LOG: list[SetAside] = []


def set_aside_log() -> list[SetAside]:
    """What was set aside in this process (the daemon records it once everything is open)."""
    return list(_LOG)


def is_damage(exc: BaseException) -> bool:
    """SQLite says the file is corrupt or not a database (not: full, locked, I/O)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in _DAMAGE_CODES


def is_storage_failure(exc: BaseException) -> bool:
    """The disk is full (or failing): keep going from memory, retry later."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None:
        return code & 0xFF in _FAILURE_CODES
    return isinstance(exc, OSError) and exc.errno in _FAILURE_ERRNOS


def set_aside(path: Path, why: str) -> Path:
    """Rename `path` (and its -wal and -shm) to the first free `<name>.damaged-<n>`."""
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.damaged-{n}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.rename(target.with_name(target.name + suffix))
    for old in range(1, n + 1 - KEEP_DAMAGED):
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                path.with_name(f"{path.name}.damaged-{old}{suffix}").unlink()
    _LOG.append(SetAside(path, target, why))
    log.error("%s is damaged (%s): set aside as %s, starting from a fresh one", path, why, target.name)
    return target


def sqlite_damage(path: Path) -> str | None:
    """Why SQLite finds `path` damaged, or None (also when it is missing, or the disk is
    full: only corruption counts)."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        raise
    if rows != [("ok",)]:
        return "; ".join(str(r[0]) for r in rows[:3])
    return None


def check_sqlite(path: Path) -> None:
    """Before opening a store: set it aside if it is damaged."""
    why = sqlite_damage(path)
    if why is not None:
        set_aside(path, why)



class StorageHealth:
    """Which stores cannot be written now (a full disk). The Agent locks the session while
    any is failing and keeps its state in memory; each writer clears its name when a
    write succeeds again. Thread-safe enough for its use: set membership under the GIL."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.on_failure: list[Callable[[str, BaseException], None]] = []

    @property
    def ok(self) -> bool:
        return not self.failing

    def failed(self, store: str, exc: BaseException) -> None:
        if store not in self.failing:
            self.failing.add(store)
            log.error("cannot write %s (%s): enforcing from memory, the session is locked", store, exc)
            for hook in self.on_failure:
                hook(store, exc)

    def recovered(self, store: str) -> None:
        if store in self.failing:
            self.failing.discard(store)
            log.warning("%s is writable again", store)
