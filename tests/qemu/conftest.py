"""The QEMU test's shared, expensive steps, done once per session: build the test image
(cached outside the clone by image-build/build.sh) and boot it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from qemu_vm import BOOT_TIMEOUT, BUILD_TIMEOUT, REPO, BootResult, boot, qemu_command


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test variant's output directory (image, vmlinuz, initrd.img, manifest.json)."""
    out = tmp_path_factory.mktemp("image")
    log = out / "build.log"
    # the build's progress goes to the terminal as it happens (seen with pytest -s) and to a log
    with log.open("w") as f, subprocess.Popen(
            [str(REPO / "image-build/build.sh"), "--variant", "test", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                f.write(line)
                if not line.startswith("WARNING: Location"):  # pip's noise about host config
                    sys.stdout.write(line)
            proc.wait(timeout=BUILD_TIMEOUT)
        finally:
            if proc.poll() is None:  # timed out or interrupted: the build's own process group
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"image build failed (exit {proc.returncode}):\n{text[-6000:]}"
    return out


@pytest.fixture(scope="session")
def guest_run(test_image: Path) -> BootResult:
    """One boot of the test image on -M virt (Cortex-A72, 2 CPUs, TCG)."""
    cmd = qemu_command(test_image / "minormode-test.img", test_image / "vmlinuz",
                       test_image / "initrd.img")
    result = boot(cmd, BOOT_TIMEOUT)
    (test_image / "console.log").write_text("\n".join(result.console))
    print(f"QEMU virt: {result.seconds:.0f} s in all, first guest fact after "
          f"{result.first_fact_at or 0:.0f} s; console log {test_image / 'console.log'}")
    return result
