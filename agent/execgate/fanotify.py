"""A small ctypes binding for fanotify permission events (no maintained binding handles them).

Only what the exec gate needs: create a group, mark a filesystem or mount for
FAN_OPEN_EXEC_PERM, read event batches, answer each with FAN_ALLOW or FAN_DENY, and keep
per-inode ignore marks as a kernel-side cache of "allowed" verdicts (FAN_MARK_FLUSH drops
them). Constants are checked against linux/fanotify.h (kernel 6.1 headers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from dataclasses import dataclass

log = logging.getLogger(__name__)

# fanotify_init flags
FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_CLASS_CONTENT = 0x00000004
FAN_UNLIMITED_QUEUE = 0x00000010
FAN_UNLIMITED_MARKS = 0x00000020
FAN_REPORT_TID = 0x00000100

# fanotify_mark flags
FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_DONT_FOLLOW = 0x00000004
FAN_MARK_IGNORED_MASK = 0x00000020
FAN_MARK_IGNORED_SURV_MODIFY = 0x00000040
FAN_MARK_FLUSH = 0x00000080
FAN_MARK_EVICTABLE = 0x00000200
FAN_MARK_INODE = 0x00000000
FAN_MARK_MOUNT = 0x00000010
FAN_MARK_FILESYSTEM = 0x00000100

# event mask bits
FAN_OPEN_EXEC = 0x00001000
FAN_Q_OVERFLOW = 0x00004000
FAN_OPEN_PERM = 0x00010000
FAN_OPEN_EXEC_PERM = 0x00040000

# responses
FAN_ALLOW = 0x01
FAN_DENY = 0x02

FAN_NOFD = -1
FANOTIFY_METADATA_VERSION = 3

AT_FDCWD = -100

# struct fanotify_event_metadata { u32 event_len; u8 vers; u8 reserved; u16 metadata_len;
#                                  aligned_u64 mask; s32 fd; s32 pid; }
_METADATA = struct.Struct("=IBBHQii")
METADATA_LEN = _METADATA.size  # 24
# struct fanotify_response { s32 fd; u32 response; }
_RESPONSE = struct.Struct("=iI")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_init.restype = ctypes.c_int
_libc.fanotify_mark.argtypes = [
    ctypes.c_int,
    ctypes.c_uint,
    ctypes.c_uint64,
    ctypes.c_int,
    ctypes.c_char_p,
]
_libc.fanotify_mark.restype = ctypes.c_int


@dataclass(frozen=True, slots=True)
class FanEvent:
    """One event: `fd` is an open file for the exec'd object (FAN_NOFD on overflow)."""

    mask: int
    fd: int
    pid: int

    @property
    def is_permission(self) -> bool:
        return bool(self.mask & (FAN_OPEN_EXEC_PERM | FAN_OPEN_PERM))


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def init(flags: int, event_f_flags: int = os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC) -> int:
    """fanotify_init(2); returns the group fd."""
    fd: int = _libc.fanotify_init(flags, event_f_flags)
    if fd < 0:
        _raise("fanotify_init")
    return fd


def mark(fan_fd: int, flags: int, mask: int, path: str | None, dirfd: int = AT_FDCWD) -> None:
    """fanotify_mark(2). With `path=None` the object is the one `dirfd` refers to."""
    encoded = None if path is None else os.fsencode(path)
    if _libc.fanotify_mark(fan_fd, flags, mask, dirfd, encoded) < 0:
        _raise(f"fanotify_mark({path if path is not None else f'fd {dirfd}'})")


def parse_events(buf: bytes) -> list[FanEvent]:
    """Split a read(2) buffer into events (FAN_EVENT_OK / FAN_EVENT_NEXT)."""
    events: list[FanEvent] = []
    offset, size = 0, len(buf)
    while size - offset >= METADATA_LEN:
        event_len, vers, _res, _mlen, mask, fd, pid = _METADATA.unpack_from(buf, offset)
        if vers != FANOTIFY_METADATA_VERSION:
            raise OSError(f"fanotify metadata version {vers}, expected {FANOTIFY_METADATA_VERSION}")
        if event_len < METADATA_LEN or event_len > size - offset:
            break
        events.append(FanEvent(mask, fd, pid))
        offset += event_len
    return events


def read_events(fan_fd: int, bufsize: int = 4096) -> list[FanEvent]:
    """One read(2): a batch of events, or [] if the non-blocking fd has none.

    A read fails when the kernel cannot open the first event's file for the reader (a
    FUSE mount without allow_other refuses even root, EACCES); the kernel has then
    answered that permission event FAN_DENY itself. That is logged and read as no events,
    so one unopenable file cannot crash the gate into an outage."""
    try:
        buf = os.read(fan_fd, bufsize)
    except BlockingIOError:
        return []
    except OSError as exc:
        if exc.errno in (errno.EBADF, errno.EINVAL, errno.EFAULT):  # the group itself
            raise
        log.warning("fanotify: an event's file could not be opened (%s); the kernel denied it", exc)
        return []
    return parse_events(buf)


def respond(fan_fd: int, event_fd: int, allow: bool) -> None:
    """Answer a permission event (the kernel matches it by the event's fd number)."""
    os.write(fan_fd, _RESPONSE.pack(event_fd, FAN_ALLOW if allow else FAN_DENY))


def ignore_exec(fan_fd: int, file_fd: int, evictable: bool = True) -> None:
    """Cache an allow: an inode ignore mark so execs of this file no longer wake the gate.

    No FAN_MARK_IGNORED_SURV_MODIFY: a write to the file drops the mark, so a modified
    file is judged again. Evictable marks do not pin the inode in memory.
    """
    flags = FAN_MARK_ADD | FAN_MARK_IGNORED_MASK
    if evictable:
        try:
            mark(fan_fd, flags | FAN_MARK_EVICTABLE, FAN_OPEN_EXEC_PERM, None, file_fd)
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: a kernel before 5.19
                raise
    mark(fan_fd, flags, FAN_OPEN_EXEC_PERM, None, file_fd)


def unignore_exec(fan_fd: int, file_fd: int) -> None:
    mark(fan_fd, FAN_MARK_REMOVE | FAN_MARK_IGNORED_MASK, FAN_OPEN_EXEC_PERM, None, file_fd)


def flush_inode_marks(fan_fd: int) -> None:
    """Drop every inode mark of the group: all cached allows (mount/fs marks stay)."""
    mark(fan_fd, FAN_MARK_FLUSH, 0, None)
