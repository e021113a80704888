"""The native blocked path (agent/filter/native/mmdns.c), loaded with ctypes.

Why native: per datagram, Python's recvfrom + sendto and the objects they make cost more
than dnsmasq's whole path; the library answers a whole batch of listed names with one
recvmmsg and one sendmmsg, and hands every other datagram back untouched. Why ctypes and
no Python headers: the library cross-compiles for the arm64 image with a plain C
compiler. Without the library the filter runs the Python path (the reference: same bytes).

Build: `python -m agent.filter.fastpath build [--cc CC] [--out PATH]` (scripts/setup does
it; image-build cross-compiles it for arm64).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.filter.hashlist import HashList

log = logging.getLogger(__name__)

ABI = 1
BATCH = 64
MSG = 4096
NAME = 256
HERE = Path(__file__).parent
SOURCE = HERE / "native" / "mmdns.c"
LIBRARY = HERE / "_mmdns.so"
ENV_PATH = "MINORMODE_DNS_FASTPATH"  # a library elsewhere, or "off"
CFLAGS = ("-O2", "-fPIC", "-shared", "-std=c11", "-Wall", "-Wextra", "-Werror",
          "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-Wl,-z,relro,-z,now")


class MmList(ctypes.Structure):
    _fields_ = (
        ("index", ctypes.c_void_p),
        ("hashes", ctypes.c_void_p),
        ("count", ctypes.c_uint64),
        ("bits", ctypes.c_uint32),
        ("reason", ctypes.c_int32),
    )


class MmProfile(ctypes.Structure):
    _fields_ = (
        ("defer", ctypes.POINTER(MmList)),
        ("n_defer", ctypes.c_uint32),
        ("allow", ctypes.POINTER(MmList)),
        ("n_allow", ctypes.c_uint32),
        ("block", ctypes.POINTER(MmList)),
        ("n_block", ctypes.c_uint32),
    )


class _SmallSet:
    """A sorted in-memory hash set in the list layout (one bucket), for the profile's own
    domains and the canaries."""

    def __init__(self, hashes: frozenset[int]) -> None:
        ordered = sorted(hashes)
        self.hashes = (ctypes.c_uint64 * max(1, len(ordered)))(*ordered)
        self.index = (ctypes.c_uint32 * 2)(0, len(ordered))
        self.count = len(ordered)

    def c_list(self, reason: int = -1) -> MmList:
        return MmList(ctypes.addressof(self.index), ctypes.addressof(self.hashes), self.count, 0, reason)


def _file_list(hl: HashList, reason: int = -1) -> MmList:
    index, hashes, bits = hl.c_view()
    return MmList(index, hashes, hl.count, bits, reason)


class FastProfile:
    """One filter profile in C's terms; holds every list it points into alive."""

    def __init__(
        self,
        defer: frozenset[int],
        allow: Sequence[frozenset[int] | HashList],
        block: Sequence[tuple[str, frozenset[int] | HashList]],
    ) -> None:
        self._keep: list[object] = []
        self.reasons = [reason for reason, _ in block]

        def c_list(source: frozenset[int] | HashList, reason: int = -1) -> MmList:
            if isinstance(source, HashList):
                self._keep.append(source)
                return _file_list(source, reason)
            small = _SmallSet(source)
            self._keep.append(small)
            return small.c_list(reason)

        defers = [c_list(defer)]
        allows = [c_list(a) for a in allow]
        blocks = [c_list(source, i) for i, (_, source) in enumerate(block)]
        self._arrays = [(MmList * max(1, len(x)))(*x) for x in (defers, allows, blocks)]
        self.c = MmProfile(self._arrays[0], len(defers), self._arrays[1], len(allows),
                           self._arrays[2], len(blocks))


class MmBatch(ctypes.Structure):
    _fields_ = (
        ("received", ctypes.c_uint32),
        ("blocked", ctypes.c_uint32),
        ("deferred", ctypes.c_uint32),
        ("send_failed", ctypes.c_uint32),
        ("defer_slot", ctypes.c_uint32 * BATCH),
        ("len", ctypes.c_uint32 * BATCH),
        ("addrlen", ctypes.c_uint32 * BATCH),
        ("addr", (ctypes.c_uint8 * 28) * BATCH),
        ("name_len", ctypes.c_uint16 * BATCH),
        ("reason", ctypes.c_int32 * BATCH),
        ("name", (ctypes.c_uint8 * NAME) * BATCH),
        ("buf", (ctypes.c_uint8 * MSG) * BATCH),
        ("reply", (ctypes.c_uint8 * 512) * BATCH),
    )


SockAddr = tuple[str, int]  # IPv6 senders come as (host, port, flowinfo, scope_id), as from recvfrom


def _address(raw: memoryview) -> SockAddr:
    """A sockaddr_in / sockaddr_in6 as the tuple socket.sendto takes."""
    family = int.from_bytes(raw[0:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    flow = int.from_bytes(raw[4:8], "big")
    scope = int.from_bytes(raw[24:28], sys.byteorder)
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, scope  # type: ignore[return-value]


class FastPath:
    """The loaded library plus one reusable batch buffer (use from one thread)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._drain = lib.mm_drain
        self._drain.argtypes = (ctypes.c_int, ctypes.POINTER(MmProfile), ctypes.POINTER(MmBatch),
                                ctypes.c_int)
        self._drain.restype = ctypes.c_int
        for fn, want in ((lib.mm_batch_size, ctypes.sizeof(MmBatch)),
                         (lib.mm_batch_buf_offset, MmBatch.buf.offset),
                         (lib.mm_batch_addr_offset, MmBatch.addr.offset),
                         (lib.mm_batch_name_offset, MmBatch.name.offset)):
            fn.restype = ctypes.c_size_t
            if fn() != want:
                raise OSError("the DNS fast path library's batch layout differs from fastpath.py")
        self.batch = MmBatch()
        self._view = memoryview(self.batch).cast("B")
        self.drained = 0  # datagrams the library read (tests check the path is used)

    def drain(
        self, fd: int, profile: FastProfile, want_names: bool
    ) -> tuple[int, list[tuple[bytes, SockAddr]]]:
        """Read a batch; the library answered the listed names. Returns the number read
        (0: nothing waiting) and the datagrams left to Python with their senders."""
        n = self._drain(fd, ctypes.byref(profile.c), ctypes.byref(self.batch), int(want_names))
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        self.drained += n
        b, view = self.batch, self._view
        left = []
        buf, addr = MmBatch.buf.offset, MmBatch.addr.offset
        for k in range(b.deferred):
            i = b.defer_slot[k]
            data = view[buf + i * MSG : buf + i * MSG + b.len[i]].tobytes()
            left.append((data, _address(view[addr + i * 28 : addr + i * 28 + 28])))
        return n, left

    def blocked_names(self) -> list[tuple[bytes, int]]:
        """The last batch's answered names (lowercase wire form) and reason indexes."""
        b, view, off = self.batch, self._view, MmBatch.name.offset
        return [(view[off + k * NAME : off + k * NAME + b.name_len[k]].tobytes(), b.reason[k])
                for k in range(b.blocked)]

    def name_hash(self, data: bytes) -> int:
        fn = self._lib.mm_name_hash
        fn.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
        fn.restype = ctypes.c_uint64
        return int(fn(data, len(data)))


def load() -> FastPath | None:
    """The library if present and of this ABI; None (the Python path) otherwise."""
    where = os.environ.get(ENV_PATH, str(LIBRARY))
    if where == "off" or not os.path.exists(where):
        return None
    try:
        lib = ctypes.CDLL(where)
        if lib.mm_abi() != ABI:
            log.warning("DNS fast path %s has ABI %d, want %d: using the Python path",
                        where, lib.mm_abi(), ABI)
            return None
        return FastPath(lib)
    except OSError as exc:
        log.warning("DNS fast path %s unusable (%s): using the Python path", where, exc)
        return None


def build(cc: str = "cc", out: Path = LIBRARY) -> Path:
    """Compile the library (atomically: a running filter keeps its mapped copy)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(SOURCE)], check=True)
    os.replace(tmp, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.filter.fastpath")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile the DNS filter's native blocked path")
    b.add_argument("--cc", default=os.environ.get("CC", "cc"), help="C compiler (e.g. aarch64-linux-gnu-gcc)")
    b.add_argument("--out", type=Path, default=LIBRARY, help=f"output (default {LIBRARY})")
    args = parser.parse_args(argv)
    try:
        print(build(args.cc, args.out))
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"error: cannot build the DNS fast path: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
