"""What stops code in places the child can write: noexec mounts, the gate, memfd_noexec.

The child's "home" is a second private tmpfs mounted noexec,nosuid,nodev as provisioning
mounts /home, /tmp, /media and /run/user (config/mounts). See agent/execgate/README.md.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import gatekit
import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs"),
]

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def home() -> Iterator[Path]:
    with gatekit.private_tmpfs("mode=1777,size=16m,noexec,nosuid,nodev") as where:
        yield where


def _child_file(home: Path, name: str, source: str | None = None, text: str = "") -> Path:
    path = home / name
    if source:
        shutil.copyfile(source, path)
    else:
        path.write_text(text)
    path.chmod(0o755)
    os.chown(path, gatekit.CHILD_UID, gatekit.CHILD_UID)
    return path


def test_downloaded_binary_and_script_in_noexec_home_fail(home: Path) -> None:
    binary = _child_file(home, "game", source="/bin/true")
    script = _child_file(home, "run.sh", text="#!/bin/sh\necho ran\n")
    for path in (binary, script):
        result = gatekit.as_child(["sh", "-c", str(path)])
        assert result.returncode == 126, result
        assert "Permission denied" in result.stderr
    # nosuid: a set-uid bit there grants nothing, and noexec already refuses the exec.


def test_dynamic_loader_cannot_map_a_binary_from_noexec_home(home: Path) -> None:
    loaders = glob.glob("/lib64/ld-linux-*.so.2") + glob.glob("/lib/ld-linux-*.so.1")
    if not loaders:
        pytest.skip("no glibc dynamic loader found")
    binary = _child_file(home, "game", source="/bin/true")
    result = gatekit.as_child([loaders[0], str(binary)])
    assert result.returncode != 0
    assert "failed to map segment" in result.stderr or "Permission denied" in result.stderr


def test_interpreter_reading_a_script_is_not_an_exec(home: Path) -> None:
    """The residual path, shown so nobody relies on noexec for it: `sh file` reads the file
    as data. What closes it is the gate refusing the interpreter to the child (an
    interpreter is OS base only if the session needs it) and no terminal app; see
    agent/execgate/README.md."""
    script = _child_file(home, "run.sh", text="echo ran\n")
    result = gatekit.as_child(["sh", str(script)])
    assert (result.returncode, result.stdout) == (0, "ran\n")


MEMFD_EXEC = """
import os, sys
fd = os.memfd_create("payload", 0)
os.write(fd, open("/bin/true", "rb").read())
try:
    os.execve(fd, ["payload"], {})
except PermissionError:
    sys.exit(77)
"""


@pytest.mark.skipif(not os.path.exists("/proc/sys/vm/memfd_noexec"), reason="kernel < 6.3")
@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs /usr/bin/python3")
@pytest.mark.parametrize(("setting", "expected"), [(0, 0), (2, 77)])
def test_memfd_noexec_stops_fexecve_of_a_memfd(setting: int, expected: int) -> None:
    """vm.memfd_noexec is per pid namespace: set it only in a namespace made here."""
    inner = (
        f"echo {setting} > /proc/sys/vm/memfd_noexec && "
        f"exec setpriv --reuid {gatekit.CHILD_UID} --regid {gatekit.CHILD_UID} --clear-groups "
        f'{SYSTEM_PYTHON} -c "$0"'
    )
    host_before = Path("/proc/sys/vm/memfd_noexec").read_text()
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "sh", "-c", inner, MEMFD_EXEC],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )
    assert result.returncode == expected, result
    assert Path("/proc/sys/vm/memfd_noexec").read_text() == host_before
