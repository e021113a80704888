"""External sort for the list compiler: sorted runs in temporary files, a k-way merge.

Why: a category list of millions of names does not fit a 1-2 GB tablet as Python sets
(3M names peaked at 758 MiB). `Spill` keeps at most `run_size` items in memory, writes
each batch sorted to a hidden file in a scratch directory (the list output directory, so
the space is the one the compiled file needs anyway), and `merged()` yields every item in
order, each once, reading all runs at once with a small buffer each. The files are removed
by `close()` (also on error: use it as a context manager).

Two codecs: `TEXT` (ASCII lines: normalised domain keys never hold a newline) and `U64`
(unsigned 64-bit integers, native byte order: they never leave this machine).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Generic, TypeVar

T = TypeVar("T", str, int)

_READ_BUFFER = 1 << 15  # bytes per run while merging (60 runs: 2 MiB)


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a sorted batch is written to a run file and read back in order."""

    write: Callable[[list[T], BinaryIO], None]
    read: Callable[[BinaryIO], Iterator[T]]


def _write_text(items: list[str], fh: BinaryIO) -> None:
    fh.write(("\n".join(items) + "\n").encode("ascii"))


def _read_text(fh: BinaryIO) -> Iterator[str]:
    for line in fh:
        yield line[:-1].decode("ascii")


def _write_u64(items: list[int], fh: BinaryIO) -> None:
    array("Q", items).tofile(fh)


def _read_u64(fh: BinaryIO) -> Iterator[int]:
    while chunk := fh.read(_READ_BUFFER):
        yield from array("Q", chunk)


TEXT: Codec[str] = Codec(_write_text, _read_text)
U64: Codec[int] = Codec(_write_u64, _read_u64)


class Spill(Generic[T]):
    """Items added in any order, read back sorted and de-duplicated (`merged`)."""

    def __init__(self, scratch: Path, codec: Codec[T], run_size: int,
                 on_run: Callable[[int, int], None] | None = None) -> None:
        """`on_run(runs, items)` is told after each run is written (progress lines)."""
        self.scratch, self.run_size, self.on_run = scratch, run_size, on_run
        self.codec: Codec[T] = codec
        self.items = 0  # added, duplicates included
        self._batch: list[T] = []
        self._runs: list[Path] = []

    def add(self, item: T) -> None:
        batch = self._batch
        batch.append(item)
        if len(batch) >= self.run_size:
            self._write_run()

    def _write_run(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        batch.sort()
        fd, name = tempfile.mkstemp(prefix=".mmdl-run-", dir=self.scratch)
        self._runs.append(Path(name))
        with os.fdopen(fd, "wb") as fh:
            self.codec.write(batch, fh)
        self.items += len(batch)
        del batch
        if self.on_run is not None:
            self.on_run(len(self._runs), self.items)

    @property
    def runs(self) -> int:
        return len(self._runs)

    def merged(self) -> Iterator[T]:
        """Every item added, in order, each once (the runs stay open until exhausted)."""
        if self._batch and not self._runs:  # one small batch: no file at all
            batch, self._batch = sorted(self._batch), []
            self.items += len(batch)
            yield from _unique(iter(batch))
            return
        self._write_run()
        with contextlib.ExitStack() as files:
            streams = [self.codec.read(files.enter_context(open(p, "rb", buffering=_READ_BUFFER)))
                       for p in self._runs]
            yield from _unique(heapq.merge(*streams))

    def close(self) -> None:
        """Remove the run files (safe to call twice)."""
        self._batch = []
        for path in self._runs:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._runs = []

    def __enter__(self) -> Spill[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _unique(ordered: Iterator[T]) -> Iterator[T]:
    it = iter(ordered)
    try:
        prev = next(it)
    except StopIteration:
        return
    yield prev
    for item in it:
        if item != prev:
            yield item
            prev = item
