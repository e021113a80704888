"""The in-flight ledger: which permission events the gate has read but may not have answered.

The kernel matches a response to an event by the event's fd number alone, so whoever
holds the fanotify group can answer an event read by a gate that has since died. The
gate writes each batch's (fd, tid) pairs here, in shared memory, before deciding; after
a crash the supervisor answers them (deny for a restricted uid, allow otherwise).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable

SLOTS = 1024  # a 16 KiB read holds at most 682 events
_HEADER = struct.Struct("=i")
_SLOT = struct.Struct("=ii")
SIZE = _HEADER.size + SLOTS * _SLOT.size


def create() -> int:
    """A zeroed shared-memory file for the ledger (not executable, not on any mount)."""
    fd = os.memfd_create("minormode-gate-ledger", os.MFD_CLOEXEC)
    os.ftruncate(fd, SIZE)
    return fd


class InFlightLedger:
    """The ledger over a `create()`d file; the gate writes it, the supervisor reads it."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SIZE)

    def record(self, entries: Iterable[tuple[int, int]]) -> None:
        """Write the batch's slots first, then the count (a reader after a crash sees
        either the old count or a complete new batch)."""
        n = 0
        for fd, tid in entries:
            if n == SLOTS:
                break
            _SLOT.pack_into(self._map, _HEADER.size + n * _SLOT.size, fd, tid)
            n += 1
        _HEADER.pack_into(self._map, 0, n)

    def clear(self) -> None:
        _HEADER.pack_into(self._map, 0, 0)

    def entries(self) -> list[tuple[int, int]]:
        (n,) = _HEADER.unpack_from(self._map, 0)
        n = max(0, min(n, SLOTS))
        return [_SLOT.unpack_from(self._map, _HEADER.size + i * _SLOT.size) for i in range(n)]

    def close(self) -> None:
        self._map.close()
