"""Notice that the installed apps changed, so verdicts follow an install without a restart.

A package or Flatpak install adds a desktop entry (and an executable); an upgrade replaces
an executable by rename (a new inode); a removal deletes both. `signature` reduces the
desktop-entry trees and the catalogued executables to their stat facts (device, inode,
size, mtime), and `AppWatch.run` compares it every `every` seconds and calls `on_change`
once a change has settled (two equal readings in a row: dpkg writes many files).

Why polling and not inotify or a dpkg trigger: the trees may not exist at start (Flatpak's
exports appear with the first Flatpak install, which inotify would need parent watches to
see), a dpkg trigger covers neither Flatpak nor a manual copy by root, and stat-ing a few
hundred paths every two seconds costs well under a millisecond of CPU on the tablet.
Only root can write these directories, so the child cannot use this to make the agent
work: at most one rescan per settled change.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# (path, device, inode, size, mtime in ns); a missing path has device and inode 0.
Signature = frozenset[tuple[str, int, int, int, int]]


def _stat(path: str) -> tuple[str, int, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, 0, 0, 0, 0)
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def signature(dirs: Iterable[str], files: Iterable[str] = ()) -> Signature:
    """Every directory under `dirs` (itself too, missing or not), every `.desktop` file in
    them, and each of `files` (the catalogued executables), as stat facts."""
    out = set()
    for top in dirs:
        out.add(_stat(top))
        base = Path(top)
        if not base.is_dir():
            continue
        for root, subdirs, names in os.walk(base):
            for d in subdirs:
                out.add(_stat(os.path.join(root, d)))
            for n in names:
                if n.endswith(".desktop"):
                    out.add(_stat(os.path.join(root, n)))
    for f in files:
        out.add(_stat(f))
    return frozenset(out)


class AppWatch:
    def __init__(self, dirs: Iterable[str], files: Callable[[], Iterable[str]],
                 on_change: Callable[[], Awaitable[None]], every: float = 2.0) -> None:
        """`files()` names the executables to watch (read again after each rescan, so an
        app installed now is watched from then on); `on_change` rescans."""
        if every <= 0:
            raise ValueError("the watch interval must be positive")
        self.dirs = tuple(dirs)
        self.files = files
        self.on_change = on_change
        self.every = every
        self.rescans = 0
        self.readings = 0  # how many times the trees were read (tests wait on it)

    def _read(self) -> Signature:
        self.readings += 1
        return signature(self.dirs, tuple(self.files()))

    async def run(self) -> None:
        """Until cancelled. A rescan that fails is logged and tried again at the next change
        or the next reading (the previous verdicts stay in force meanwhile)."""
        seen = await asyncio.to_thread(self._read)
        pending: Signature | None = None
        while True:
            await asyncio.sleep(self.every)
            now = await asyncio.to_thread(self._read)
            if now == seen:
                pending = None
                continue
            if now != pending:  # still changing: wait for it to settle
                pending = now
                continue
            try:
                await self.on_change()
            except OSError as exc:
                log.error("rescanning the installed apps failed (will retry): %s", exc)
                continue
            self.rescans += 1
            seen = await asyncio.to_thread(self._read)  # the new executables are watched too
            pending = None
            log.info("installed apps changed: verdicts rebuilt")
