"""Be told, on the event loop, when another process writes a file or changes a directory:
inotify, no polling.

Why: the spending ledger is also written by root's `minormodectl purchases approve|deny`;
the broker used to look every second to see such decisions, which kept an idle agent
waking. inotify wakes the loop only when something is written. `WriteWatch` is on the
file's directory (SQLite in WAL mode writes `NAME-wal`, and may replace or create the
files), for names that start with the file's name; our own writes wake it too (harmless:
the caller looks, finds nothing new). `DirWatch` is told of any entry of a set of
directories changing (the installed-apps watch: desktop entries and executables added,
replaced by rename or removed). Linux only (the device); `start` raises OSError naming the
directory if inotify is unavailable.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name, NUL padded)
_libc = ctypes.CDLL(None, use_errno=True)


def _error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _open(what: Path) -> int:
    fd = int(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
    if fd < 0:
        raise _error(f"inotify for {what}")
    return fd


def _add(fd: int, directory: Path | str, mask: int) -> int:
    wd = int(_libc.inotify_add_watch(fd, os.fsencode(directory), mask))
    if wd < 0:
        raise _error(f"cannot watch {directory}")
    return wd


def _names(fd: int) -> Iterator[bytes]:
    """The names of every queued event (b"" for the watched directory itself)."""
    while True:
        try:
            data = os.read(fd, 64 * 1024)
        except BlockingIOError:
            return
        pos = 0
        while pos + _EVENT.size <= len(data):
            _wd, _mask, _cookie, length = _EVENT.unpack_from(data, pos)
            yield data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0")
            pos += _EVENT.size + length


class _Watch:
    """An inotify fd read on the running loop; `close` stops it."""

    _fd: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def _attach(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._fd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


class WriteWatch(_Watch):
    def __init__(self, path: Path, on_write: Callable[[], None]) -> None:
        self.path, self.on_write = path, on_write

    def start(self) -> None:
        """Watch from now on (on the running loop)."""
        fd = _open(self.path.parent)
        try:
            _add(fd, self.path.parent, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
        except OSError:
            os.close(fd)
            raise
        self._attach(fd)

    def _read(self) -> None:
        assert self._fd is not None
        prefix = os.fsencode(self.path.name)
        if any([name.startswith(prefix) for name in _names(self._fd)]):  # a list: read them all
            self.on_write()


class DirWatch(_Watch):
    """`on_change()` on the loop when an entry of any watched directory is created,
    removed, renamed, written or changes attributes, or a directory itself goes. `watch`
    replaces the set (the caller re-arms after each look: directories come and go)."""

    MASK = (IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
            | IN_DELETE_SELF | IN_MOVE_SELF)

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self._wds: dict[str, int] = {}

    def start(self) -> None:
        self._attach(_open(Path("directories")))

    def watch(self, directories: Iterable[str]) -> list[str]:
        """Watch exactly `directories`; returns those that could not be watched (gone
        meanwhile, or the inotify watch limit reached)."""
        assert self._fd is not None
        wds: dict[str, int] = {}
        failed = []
        for d in sorted(set(directories)):  # again each time: a path may be a new directory now
            try:
                wds[d] = _add(self._fd, d, self.MASK)
            except OSError:
                failed.append(d)
        for stale in set(self._wds.values()) - set(wds.values()):
            _libc.inotify_rm_watch(self._fd, stale)  # EINVAL if the kernel dropped it: fine
        self._wds = wds
        return failed

    def _read(self) -> None:
        assert self._fd is not None
        if [None for _ in _names(self._fd)]:
            self.on_change()

    def close(self) -> None:
        super().close()
        self._wds.clear()
