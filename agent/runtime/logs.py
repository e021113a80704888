"""Where the daemon's log records go: the journal's native protocol under systemd, plain
stderr otherwise.

Under systemd (JOURNAL_STREAM names the device and inode of our stderr), each record is one
datagram to /run/systemd/journal/socket in journald's native format, so a multi-line message
(a policy's list of problems) stays one entry, its level becomes PRIORITY=, and the journal
adds the timestamp (the message carries none). Fields: MESSAGE, PRIORITY,
SYSLOG_IDENTIFIER, LOGGER, CODE_FILE/CODE_LINE/CODE_FUNC, the exception's traceback in
EXCEPTION when there is one, and every `extra=` key written as a journal field name
(upper-case, e.g. `log.info("...", extra={"POLICY_VERSION": 3})`). A record too large for a
datagram goes in a sealed memfd passed with SCM_RIGHTS, as sd_journal_send(3) does. If the
socket cannot be written, the record goes to stderr with a `<N>` priority prefix, which
journald reads from the stream (SyslogLevelPrefix=, on by default).

Written here rather than taken from python3-systemd: the protocol is a few lines, the
device venv is built from PyPI where `systemd-python` is a C extension needing
libsystemd-dev, and Debian's python3-systemd is not visible in that venv.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "minormode-agent"
# A journal field name: upper-case letters, digits, underscores; not starting with "_" or a
# digit (those are trusted fields journald sets itself).
FIELD_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def priority(levelno: int) -> int:
    """syslog(3) priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def encode(fields: Iterable[tuple[str, str]]) -> bytes:
    """journald's native format: `NAME=value\\n`, or for a value with a newline
    `NAME\\n` + its length as 64-bit little-endian + the value + `\\n`."""
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def under_journal(environ: Mapping[str, str] = os.environ, stderr_fd: int = 2) -> bool:
    """systemd connected our stderr to the journal (JOURNAL_STREAM=device:inode matches it)."""
    stream = environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(x) for x in stream.split(":"))
        st = os.fstat(stderr_fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class JournalHandler(logging.Handler):
    """One journal entry per record, over the native protocol (see the module docstring)."""

    def __init__(self, socket_path: Path = JOURNAL_SOCKET, identifier: str = IDENTIFIER) -> None:
        super().__init__()
        self.socket_path = str(socket_path)
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        out = [
            ("MESSAGE", record.getMessage()),
            ("PRIORITY", str(priority(record.levelno))),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName),
        ]
        if record.exc_info:
            out.append(("EXCEPTION", logging.Formatter().formatException(record.exc_info)))
        out += [(k, str(v)) for k, v in vars(record).items() if FIELD_NAME.match(k)]
        return out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            payload = encode(self.fields(record))
        except (TypeError, ValueError):  # a message whose arguments do not format
            self.handleError(record)
            return
        try:
            self._send(payload)
        except OSError:
            self._fallback(record)

    def _send(self, payload: bytes) -> None:
        try:
            self.sock.sendto(payload, self.socket_path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):  # too big for a datagram
                raise
            fd = os.memfd_create("minormode-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            try:
                os.write(fd, payload)
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                            | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
                self.sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))],
                                  0, self.socket_path)
            finally:
                os.close(fd)

    def _fallback(self, record: logging.LogRecord) -> None:
        """The journal socket is gone: stderr, which systemd also reads, with `<N>` first."""
        try:
            sys.stderr.write(f"<{priority(record.levelno)}>{record.getMessage()}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def configure(level: str, log_file: Path | None = None, environ: Mapping[str, str] = os.environ) -> None:
    """The daemon's logging: a file when asked, the journal under systemd, stderr otherwise."""
    handler: logging.Handler
    if log_file is not None:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    elif under_journal(environ):
        handler = JournalHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
