"""The QEMU test's shared, expensive steps, done once per session: build the test image
(cached outside the clone by image-build/build.sh) and boot it once."""

from __future__ import annotations

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
    with log.open("w") as f:
        r = subprocess.run([str(REPO / "image-build/build.sh"), "--variant", "test", "--out", str(out)],
                           stdout=f, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT, check=False)
    text = log.read_text()
    print(text[-3000:])
    assert r.returncode == 0, f"image build failed (exit {r.returncode}):\n{text[-6000:]}"
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
