"""What every check shares: the read-only view of a root file system it reads, the facts
about the child and the running kernel it is handed, and the finding it returns.

A check is a pure function of these values, so the same code audits an image's root in a
directory, a unit on the production line, and a test's prepared tree."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class RootView(Protocol):
    """A root file system, read only. Paths are absolute as seen inside that root
    ("/etc/passwd"); symlinks resolve inside it, never to the auditing machine's files."""

    def read_bytes(self, path: str) -> bytes | None:
        """The file's contents (None when it is missing or not a regular file)."""

    def read_text(self, path: str) -> str | None:
        """The file's text, undecodable bytes replaced (None as `read_bytes`)."""

    def link_target(self, path: str) -> str | None:
        """Where a symlink points, unresolved (None when `path` is not a symlink)."""

    def exists(self, path: str) -> bool:
        """The path exists (a dangling symlink does not)."""

    def list_dir(self, path: str) -> tuple[str, ...]:
        """The names in a directory, sorted (empty when it is missing)."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    groups: frozenset[str]  # the primary group's name and every supplementary group


@dataclass(frozen=True)
class Runtime:
    """What only the running system knows (None for a root in a directory)."""

    sysrq: str | None  # /proc/sys/kernel/sysrq
    cmdline: str | None  # /proc/cmdline


@dataclass(frozen=True)
class Context:
    children: tuple[Account, ...]
    missing_child_uids: tuple[int, ...] = ()  # named by the agent's settings, no account
    runtime: Runtime | None = None


@dataclass(frozen=True)
class Finding:
    """One open item: a stable id (concern.check[:subject]), what is open, the file the
    check looked at, and how to close it."""

    id: str
    what: str
    path: str
    fix: str


Check = Callable[[RootView, Context], Sequence[Finding]]


@dataclass(frozen=True)
class CheckSpec:
    """A named check: `id` is the prefix of every finding it returns."""

    id: str
    summary: str
    run: Check
