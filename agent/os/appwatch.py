"""Notice that the installed apps changed, so verdicts follow an install without a restart.

A package or Flatpak install adds a desktop entry (and an executable); an upgrade replaces
an executable by rename (a new inode); a removal deletes both. `signature` reduces the
desktop-entry trees and the catalogued executables to their stat facts (device, inode,
size, mtime); `AppWatch.run` reads it when inotify says one of those directories changed
and calls `on_change` once the change has settled (two equal readings `every` seconds
apart: dpkg writes many files).

Why inotify on directories (`agent.store.filewatch.DirWatch`) and not a dpkg trigger: a
trigger covers neither Flatpak nor a manual copy by root. The watched directories are
every directory of the desktop-entry trees, the nearest existing parent of a tree not
there yet (Flatpak's exports appear with the first Flatpak install), and the catalogued
executables' directories; the set is re-armed after each reading. An idle tablet reads
nothing (before: a stat sweep every 2 s, 0.5 wake-ups a second); a safety reading every
`safety` seconds (300) covers a missed event, and if inotify cannot watch a directory
(the watch limit) the watch reads every `every` seconds as before.
Only root can write these directories, so the child cannot use this to make the agent
work: at most one rescan per settled change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from agent.store.filewatch import DirWatch

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


def watch_dirs(dirs: Iterable[str], files: Iterable[str] = ()) -> set[str]:
    """The directories whose changes can change `signature(dirs, files)`."""
    out: set[str] = set()
    for top in dirs:
        here = Path(top)
        while not here.is_dir() and here != here.parent:  # not there yet: its creation
            here = here.parent
        out.add(str(here))
        if str(here) == top:
            for root, subdirs, _names in os.walk(top):
                out.update(os.path.join(root, d) for d in subdirs)
    out.update(os.path.dirname(f) or "." for f in files)
    return out


class AppWatch:
    def __init__(self, dirs: Iterable[str], files: Callable[[], Iterable[str]],
                 on_change: Callable[[], Awaitable[None]], every: float = 2.0,
                 safety: float = 300.0) -> None:
        """`files()` names the executables to watch (read again after each rescan, so an
        app installed now is watched from then on); `on_change` rescans."""
        if every <= 0 or safety <= 0:
            raise ValueError("the watch intervals must be positive")
        self.dirs = tuple(dirs)
        self.files = files
        self.on_change = on_change
        self.every = every
        self.safety = safety
        self.rescans = 0
        self.readings = 0  # how many times the trees were read (tests wait on it)
        self._changed = asyncio.Event()
        self._watch: DirWatch | None = None
        self._polling = False  # inotify could not watch everything: read every `every` s

    def _read(self) -> Signature:
        self.readings += 1
        files = tuple(self.files())
        self._arm(watch_dirs(self.dirs, files))  # first: a change after this is an event
        return signature(self.dirs, files)

    def _arm(self, directories: set[str]) -> None:
        if self._watch is None:
            return
        failed = self._watch.watch(directories)
        if failed and not self._polling:
            log.warning("installed apps: cannot watch %s; reading every %.0f s instead",
                        ", ".join(failed[:3]), self.every)
        self._polling = bool(failed)

    async def _next_look(self, settling: bool) -> None:
        """Until a watched directory changes (or the safety reading is due); while a
        change settles, or without inotify, `every` seconds."""
        if settling or self._polling or self._watch is None:
            await asyncio.sleep(self.every)
        else:
            with contextlib.suppress(TimeoutError):  # the safety reading
                await asyncio.wait_for(self._changed.wait(), self.safety)
            await asyncio.sleep(self.every)  # let the writer go on before the first look
        self._changed.clear()

    async def run(self) -> None:
        """Until cancelled. A rescan that fails is logged and tried again at the next change
        or the next reading (the previous verdicts stay in force meanwhile)."""
        try:
            self._watch = DirWatch(self._changed.set)
            self._watch.start()
        except OSError as exc:
            log.warning("installed apps: no inotify (%s); reading every %.0f s", exc, self.every)
            self._watch = None
        try:
            await self._follow()
        finally:
            if self._watch is not None:
                self._watch.close()
                self._watch = None

    async def _follow(self) -> None:
        seen = await asyncio.to_thread(self._read)
        pending: Signature | None = None
        while True:
            await self._next_look(settling=pending is not None)
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
