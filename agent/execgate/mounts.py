"""Every file system under a marked path gets the gate's mark, including those mounted later.

Why: `create_group` marks the configured paths' file systems at start, and a fanotify
mark belongs to one superblock (or one mount). Other file systems under "/" were never
marked: /run (a tmpfs; Debian's /run/lock is writable by every user), logind's
/run/user/UID (mounted at each login, nosuid and nodev; a drop-in remounts it noexec
a moment later, where the package is installed), a stick udisks
mounts under /media, a FUSE mount made through the set-uid fusermount. A static program
there ran for the child without any event (a dynamic one was already refused: its
loader's open on "/" is the gate's, with no program open before it).

fanotify has no mount notifications before Linux 6.15 (FAN_MNT_ATTACH), but the kernel
flags `/proc/self/mountinfo` with POLLPRI on every change of this mount namespace. So
`MountFollower` marks every mount under a root at start and each new one as soon as it
appears: one poll wake-up per mount change and none while nothing changes.

Scope: mounts in the gate's mount namespace (the host's, or a service namespace with
slave propagation, which receives the host's mounts). A mount made in another namespace
(a user namespace the child made) is not seen here; the child has no tool in its base
that makes one (base.py), and such a mount's dynamic programs still get no loader.
Between a mount appearing and its mark there is one poll wake-up and a mountinfo read
(milliseconds); the places it covers are mounted by root (logind, udisks, fusermount),
before the child can use them.

Pure part: `parse_mountinfo`, `to_mark`. Adapter: `MountFollower` (a thread).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

MOUNTINFO = "/proc/self/mountinfo"

# File system types that hold no program anyone can exec, or whose mark would do harm:
# autofs (resolving its mount point triggers the automount; the file system it mounts
# then appears as a mount of its own and is marked), and the kernel's pseudo file systems.
NO_PROGRAMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "rpc_pipefs",
    "securityfs", "selinuxfs", "sysfs", "tracefs",
})

_ESCAPE = re.compile(r"\\([0-7]{3})")


class MountInfoError(ValueError):
    """A mountinfo line that does not have the kernel's layout (proc(5))."""


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: the mount's id, where it is, and what it is."""

    mount_id: int
    mount_point: str
    fs_type: str
    source: str


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Parse `/proc/PID/mountinfo`: "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - TYPE SOURCE SUPER"."""
    mounts = []
    for lineno, line in enumerate(text.split("\n"), 1):  # the kernel's separator only
        if not line.strip():
            continue
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(" "), right.split(" ")
        if not sep or len(fields) < 6 or len(tail) < 2 or not (fields[0].isascii() and fields[0].isdigit()):
            raise MountInfoError(
                f"mountinfo line {lineno}: not 'ID PARENT DEV ROOT POINT OPTS ... - TYPE SOURCE': "
                f"{line[:200]!r}")
        mounts.append(Mount(int(fields[0]), _unescape(fields[4]), tail[0], _unescape(tail[1])))
    return tuple(mounts)


def _under(path: str, root: str) -> bool:
    return root in ("/", path) or path.startswith(root.rstrip("/") + "/")


def to_mark(mounts: Iterable[Mount], roots: Sequence[str], known: Iterable[int] = ()) -> tuple[Mount, ...]:
    """The mounts to mark: not yet known (by mount id), at or under a root, and of a type
    that can hold programs."""
    seen = set(known)
    return tuple(m for m in mounts
                 if m.mount_id not in seen and m.fs_type not in NO_PROGRAMS
                 and any(_under(m.mount_point, root) for root in roots))


class MountFollower:
    """Calls `mark(mount_point)` for every mount under `roots`, now and as they appear.

    `mark` raises OSError when the kernel refuses; ENOENT (the mount went away before it
    was marked) is ignored, anything else is logged as an error: that file system's
    programs then run unjudged. `marked` holds what was marked, by mount id."""

    def __init__(self, roots: Sequence[str], mark: Callable[[str], None], *,
                 mountinfo: str = MOUNTINFO) -> None:
        self.roots = tuple(os.path.realpath(r) for r in roots)
        self._mark = mark
        self._path = mountinfo
        self.marked: dict[int, Mount] = {}
        self.refused: dict[int, Mount] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._fd: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Mark what is mounted now (before returning), then follow changes in a thread."""
        self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._sync(late=False)
        log.info("exec gate: %d file systems marked under %s", len(self.marked), ", ".join(self.roots))
        self._thread = threading.Thread(target=self._follow, name="gate-mounts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=10)
            self._thread = None
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._fd, self._wake_r, self._wake_w = None, -1, -1

    def remark(self) -> None:
        """Mark every followed mount again (the caller made a fresh group)."""
        with self._lock:
            mounts = list(self.marked.values())
            self.marked.clear()
        self._apply(mounts, late=False)

    def wait_marked(self, mount_point: str, timeout: float) -> bool:
        """True once a mount at `mount_point` is marked (for tests and callers that mount)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: any(m.mount_point == mount_point for m in self.marked.values()), timeout)

    # -- internals

    def _read(self) -> tuple[Mount, ...]:
        assert self._fd is not None
        chunks = []
        os.lseek(self._fd, 0, os.SEEK_SET)
        while chunk := os.read(self._fd, 1 << 16):
            chunks.append(chunk)
        return parse_mountinfo(b"".join(chunks).decode("utf-8", "surrogateescape"))

    def _sync(self, late: bool = True) -> None:
        mounts = self._read()
        present = {m.mount_id for m in mounts}
        with self._lock:  # forget unmounted ones: mount ids are reused
            for gone in [i for i in self.marked if i not in present]:
                del self.marked[gone]
            for gone in [i for i in self.refused if i not in present]:
                del self.refused[gone]
            known = (*self.marked, *self.refused)
        self._apply(to_mark(mounts, self.roots, known), late)

    def _apply(self, mounts: Iterable[Mount], late: bool) -> None:
        for mount in mounts:
            try:
                self._mark(mount.mount_point)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                log.error("exec gate: cannot mark %s (%s): %s; programs there run unjudged",
                          mount.mount_point, mount.fs_type, exc)
                with self._lock:
                    self.refused[mount.mount_id] = mount
                continue
            with self._changed:
                self.marked[mount.mount_id] = mount
                self._changed.notify_all()
            if late:  # the QEMU guest waits for this line before it tries the mount
                log.info("exec gate: marked %s (%s), mounted after start", mount.mount_point, mount.fs_type)

    def _follow(self) -> None:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLPRI | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if self._wake_r in events:
                return
            try:
                self._sync()
            except (OSError, MountInfoError):  # POLLPRI is reset by the poll: no busy loop
                log.exception("exec gate: cannot read the mount table")
