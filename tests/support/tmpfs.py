"""A tmpfs a test mounts (root): the exec gate's private file systems, a small disk to fill."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def mounted_tmpfs(options: str, prefix: str = "mm-tmpfs-", mode: int = 0o755) -> Iterator[Path]:
    """A tmpfs with `options` (e.g. "mode=755,size=64m") on a fresh directory; always
    unmounted (lazily if a process still holds it), even when the test fails."""
    where = Path(tempfile.mkdtemp(prefix=prefix))
    where.chmod(mode)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()
