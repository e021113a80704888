"""The compiled list file: sorted 64-bit name hashes behind a bucket index, memory-mapped.

Why this shape: a Python set of 1M names costs ~117 MB; this costs 8 bytes a name plus a
256 KiB index, lives in the page cache (shared, reclaimable, no RAM spike on reload), and a
lookup is one dictionary-free bisect over ~16 entries.

Layout (little-endian):
    0   8  magic  b"MMDLIST\\x00"
    8   4  version (1)
    12  4  bucket bits B (0..24)
    16  8  count N
    24  8  reserved (0)
    32     (2**B + 1) uint32 bucket starts, padded to 8 bytes
    ...    N uint64 sorted hashes; bucket i holds hashes whose top B bits are i
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import sys
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

try:  # the builtin module: importing hashlib would also map OpenSSL (~2 MiB RSS)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - every CPython build has _blake2
    from hashlib import blake2b

MAGIC = b"MMDLIST\x00"
VERSION = 1
_HEADER = struct.Struct("<8sIIQQ")
SUFFIX = ".mmdl"


class ListFileError(ValueError):
    """A compiled list file is unreadable; the message names the file and the problem."""


def name_hash(wire: bytes) -> int:
    """Stable 64-bit hash of a lowercase wire-format name (same in compiler and filter)."""
    return int.from_bytes(blake2b(wire, digest_size=8).digest(), "little")


def bucket_bits_for(count: int) -> int:
    """About 16 hashes a bucket, so a lookup bisects a handful of entries."""
    return max(0, min(24, count.bit_length() - 4))


def _bucket_starts(bits: int, count: int, ordered: Iterable[Iterable[int]]) -> array[int]:
    """The (2**bits + 1) uint32 bucket starts of sorted hashes (given in chunks)."""
    starts = array("I", bytes(4 * ((1 << bits) + 1)))
    if bits:
        shift = 64 - bits
        for chunk in ordered:
            for h in chunk:
                starts[(h >> shift) + 1] += 1
        total = 0
        for i in range(len(starts)):
            total += starts[i]
            starts[i] = total
    else:
        starts[1] = count
    return starts


def _head(bits: int, count: int, starts: array[int]) -> bytes:
    """Header and bucket index: everything of the file before the hashes."""
    if sys.byteorder != "little":  # pragma: no cover - the device and CI are little-endian
        starts.byteswap()
    index = starts.tobytes()  # not struct.pack(*starts): 2**B Python ints at once
    if len(index) % 8:
        index += b"\x00" * (8 - len(index) % 8)
    return _HEADER.pack(MAGIC, VERSION, bits, count, 0) + index


def encode(hashes: Iterable[int]) -> bytes:
    """The file's bytes for a set of hashes (duplicates removed, sorted)."""
    ordered = sorted(set(hashes))
    count = len(ordered)
    bits = bucket_bits_for(count)
    body = struct.pack(f"<{count}Q", *ordered)
    return _head(bits, count, _bucket_starts(bits, count, (ordered,))) + body


_CHUNK = 1 << 16  # hashes per read while streaming (512 KiB)


def write_sorted(out: BinaryIO, ordered: Iterable[int], scratch: Path) -> int:
    """Write the file for hashes given in ascending order, each once (what `encode` makes of
    them, byte for byte), in bounded memory: the hashes go to a scratch file first (the
    header needs their count), which is read twice (bucket index, then the body). Returns
    the count."""
    fd, name = tempfile.mkstemp(prefix=".mmdl-body-", dir=scratch)
    try:
        count = 0
        with os.fdopen(fd, "wb") as body:
            chunk = array("Q")
            for h in ordered:
                chunk.append(h)
                if len(chunk) >= _CHUNK:
                    _store(chunk, body)
                    count += len(chunk)
                    chunk = array("Q")
            _store(chunk, body)
            count += len(chunk)
        bits = bucket_bits_for(count)
        with open(name, "rb") as body:
            out.write(_head(bits, count, _bucket_starts(bits, count, _chunks(body))))
            body.seek(0)
            while data := body.read(_CHUNK * 8):
                out.write(data)
        return count
    finally:
        os.unlink(name)


def _store(chunk: array[int], fh: BinaryIO) -> None:
    if sys.byteorder != "little":  # pragma: no cover - the device and CI are little-endian
        chunk.byteswap()
    chunk.tofile(fh)


def _chunks(fh: BinaryIO) -> Iterator[array[int]]:
    while data := fh.read(_CHUNK * 8):
        chunk = array("Q", data)
        if sys.byteorder != "little":  # pragma: no cover
            chunk.byteswap()
        yield chunk


class AtomicFile:
    """A file that appears whole under its name or not at all: written to a hidden
    temporary beside it, `commit()` fsyncs it, renames it over and fsyncs the directory;
    `discard()` (or leaving the `with` block without committing) removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        self.fh: BinaryIO = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit/discard

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)
        dirfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def discard(self) -> None:
        self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.fh.closed:
            self.discard()


def write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename over: readers see the old file or the new one, never half."""
    with AtomicFile(path) as f:
        f.fh.write(data)
        f.commit()


class HashList:
    """A read-only, memory-mapped compiled list."""

    __slots__ = ("_bits", "_c", "_index", "_map", "_shift", "_start", "_table", "count", "path", "stat_key")

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            self.stat_key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if st.st_size < _HEADER.size:
                raise ListFileError(f"{path}: {st.st_size} bytes is too short for a list file")
            # Private copy-on-write, never written: the pages stay the page cache's, and a
            # writable buffer lets the native fast path take its address (`c_view`).
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        magic, version, bits, count, _ = _HEADER.unpack_from(self._map)
        if magic != MAGIC:
            self._map.close()
            raise ListFileError(f"{path}: not a compiled list (bad magic {magic!r})")
        if version != VERSION:
            self._map.close()
            raise ListFileError(f"{path}: list version {version}, this filter reads {VERSION}")
        if bits > 24:
            self._map.close()
            raise ListFileError(f"{path}: bucket bits {bits} out of range")
        index_len = ((1 << bits) + 1) * 4
        index_len += (-index_len) % 8
        start = _HEADER.size + index_len
        if st.st_size != start + count * 8:
            self._map.close()
            raise ListFileError(
                f"{path}: size {st.st_size} does not match {count} hashes"
                f" (want {start + count * 8})"
            )
        view = memoryview(self._map)
        self._index = view[_HEADER.size : _HEADER.size + ((1 << bits) + 1) * 4].cast("I")
        self._table = view[start:].cast("Q")
        self._shift = 64 - bits
        self._bits = bits
        self._start = start
        self._c: object = None
        self.count = int(count)
        if self._index[len(self._index) - 1] != count:
            self.close()
            raise ListFileError(f"{path}: bucket index does not end at the hash count")

    def __contains__(self, h: int) -> bool:
        b = h >> self._shift if self._shift < 64 else 0
        index = self._index
        lo = index[b]
        hi = index[b + 1]
        if lo >= hi:
            return False
        table = self._table
        i = bisect_left(table, h, lo, hi)
        return i < hi and bool(table[i] == h)

    def __len__(self) -> int:
        return self.count

    def c_view(self) -> tuple[int, int, int]:
        """Addresses of the bucket index and of the hashes, and the bucket bits, for the
        native fast path (agent/filter/fastpath.py). Valid while this object lives."""
        import ctypes  # noqa: PLC0415 - only with the fast path: ctypes costs RSS

        if self._c is None:
            self._c = (ctypes.c_char * len(self._map)).from_buffer(self._map)
        base = ctypes.addressof(self._c)  # type: ignore[arg-type]
        return base + _HEADER.size, base + self._start, self._bits

    def close(self) -> None:
        self._c = None  # the exported buffer first, or the map cannot close
        self._index.release()
        self._table.release()
        self._map.close()
