"""Splitting a fanotify read buffer into events (no kernel needed)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from agent.execgate import fanotify

META = struct.Struct("=IBBHQii")


def _event(mask: int, fd: int, pid: int, extra: bytes = b"") -> bytes:
    return META.pack(META.size + len(extra), 3, 0, META.size, mask, fd, pid) + extra


def test_parse_batch_with_info_records_and_a_truncated_tail() -> None:
    buf = (
        _event(fanotify.FAN_OPEN_EXEC_PERM, 5, 100)
        + _event(fanotify.FAN_OPEN_EXEC_PERM, 6, 101, extra=b"\0" * 8)
        + _event(fanotify.FAN_Q_OVERFLOW, fanotify.FAN_NOFD, 0)[:10]
    )
    events = fanotify.parse_events(buf)
    assert [(e.fd, e.pid, e.is_permission) for e in events] == [(5, 100, True), (6, 101, True)]


def test_wrong_metadata_version_is_an_error() -> None:
    bad = META.pack(META.size, 2, 0, META.size, 0, 1, 1)
    with pytest.raises(OSError, match="metadata version 2"):
        fanotify.parse_events(bad)


def test_metadata_matches_the_kernel_header_size() -> None:
    assert fanotify.METADATA_LEN == 24


def test_a_read_the_kernel_fails_for_one_event_is_no_events_but_a_bad_group_still_raises(tmp_path: Path) -> None:
    """read(2) of a group fails when the kernel cannot open the event's file (it answers
    that event FAN_DENY itself): the gate reads on. A directory fd stands for such a read
    (EISDIR, from the same read path); a closed fd is the group gone, which must raise."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert fanotify.read_events(fd) == []
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        fanotify.read_events(fd)  # EBADF
