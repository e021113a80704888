"""Be told, on the event loop, when another process writes a file: inotify, no polling.

Why: the spending ledger is also written by root's `minormodectl purchases approve|deny`;
the broker used to look every second to see such decisions, which kept an idle agent
waking. inotify wakes the loop only when something is written. The watch is on the file's
directory (SQLite in WAL mode writes `NAME-wal`, and may replace or create the files), for
names that start with the file's name; our own writes wake it too (harmless: the caller
looks, finds nothing new). Linux only (the device); `start` raises OSError naming the
directory if inotify is unavailable.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name, NUL padded)


class WriteWatch:
    def __init__(self, path: Path, on_write: Callable[[], None]) -> None:
        self.path, self.on_write = path, on_write
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Watch from now on (on the running loop)."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify for {self.path.parent}: {os.strerror(err)}")
        mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
        if libc.inotify_add_watch(fd, os.fsencode(self.path.parent), mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"cannot watch {self.path.parent}: {os.strerror(err)}")
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        assert self._fd is not None
        prefix = os.fsencode(self.path.name)
        written = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                break
            pos = 0
            while pos + _EVENT.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0")
                written = written or name.startswith(prefix)
                pos += _EVENT.size + length
        if written:
            self.on_write()

    def close(self) -> None:
        if self._fd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
