"""The adapter: a root file system in a directory as a `RootView`, and the running
kernel's facts. The audit reads "/" through the same class as an image in a directory.

Symlinks are followed inside the root: an absolute link in an image's tree
(`/etc/alternatives/...`) names a file of that image, not of the machine auditing it."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from agent.lockdown.model import Runtime

MAX_LINKS = 40  # as the kernel's ELOOP


class RootDir:
    """`RootView` over a directory; reads only."""

    def __init__(self, root: Path, mounts: Mapping[str, Path] | None = None) -> None:
        """`mounts`: directories seen at a path inside the root, as a mount would put them
        there (an image's boot files at /boot/firmware before the partition is made)."""
        self.root = root
        self.mounts = {PurePosixPath(k): v for k, v in (mounts or {}).items()}

    def _host(self, inside: PurePosixPath) -> Path:
        for point, host in self.mounts.items():
            if inside == point or point in inside.parents:
                return host.joinpath(*inside.parts[len(point.parts):])
        return self.root.joinpath(*inside.parts[1:])

    def _resolve(self, path: str, *, follow_last: bool = True) -> Path | None:
        """The host path of `path` with every symlink resolved inside the root; None when
        a component is missing or the links loop."""
        todo = list(PurePosixPath("/", path).parts[1:])
        done = PurePosixPath("/")
        links = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                done = done.parent
                continue
            if part == ".":
                continue
            candidate = done / part
            host = self._host(candidate)
            try:
                mode = os.lstat(host).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return None  # a refused directory raises: "run as root", not "missing"
            if stat.S_ISLNK(mode) and (todo or follow_last):
                links += 1
                if links > MAX_LINKS:
                    return None
                target = PurePosixPath(os.readlink(host))
                todo = [*target.parts[1:], *todo] if target.is_absolute() else [*target.parts, *todo]
                if target.is_absolute():
                    done = PurePosixPath("/")
                continue
            done = candidate
        return self._host(done)

    def read_bytes(self, path: str) -> bytes | None:
        host = self._resolve(path)
        if host is None or not host.is_file():
            return None
        return host.read_bytes()

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def link_target(self, path: str) -> str | None:
        parent = self._resolve(str(PurePosixPath("/", path).parent))
        if parent is None:
            return None
        host = parent / PurePosixPath(path).name
        return os.readlink(host) if host.is_symlink() else None

    def exists(self, path: str) -> bool:
        return self._resolve(path) is not None

    def list_dir(self, path: str) -> tuple[str, ...]:
        host = self._resolve(path)
        if host is None or not host.is_dir():
            return ()
        return tuple(sorted(os.listdir(host)))


def running_kernel(proc: Path = Path("/proc")) -> Runtime:
    """The live SysRq setting and kernel command line (what the boot really used)."""

    def read(name: str) -> str | None:
        try:
            return (proc / name).read_text().strip()
        except FileNotFoundError:
            return None

    return Runtime(sysrq=read("sys/kernel/sysrq"), cmdline=read("cmdline"))
