"""The boot manifest: its writer (what image-build runs) and its reader's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.lockdown.manifest import ManifestError, manifest_of, parse_manifest, sha256_hex

REPO = Path(__file__).parents[3]
DIGEST = "ab" * 32


def write_manifest(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.lockdown.manifest", *argv], capture_output=True,
                          text=True, cwd=REPO, check=False)


def test_the_writer_records_every_boot_file(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    (boot / "overlays").mkdir(parents=True)
    for name in ("cmdline.txt", "config.txt"):
        (boot / name).write_bytes((REPO / "image-build/boot" / name).read_bytes())
    (boot / "overlays/dwc2.dtbo").write_bytes(b"\xd0\x0d\xfe\xed")
    out = tmp_path / "root/usr/lib/minormode/boot-manifest.json"
    done = write_manifest("--boot-files", str(boot), "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["format"] == 1 and data["boot_dir"] == "/boot/firmware"
    assert data["cmdline"] == (REPO / "image-build/boot/cmdline.txt").read_text().strip()
    assert data["files"] == {"cmdline.txt": sha256_hex((boot / "cmdline.txt").read_bytes()),
                             "config.txt": sha256_hex((boot / "config.txt").read_bytes()),
                             "overlays/dwc2.dtbo": sha256_hex(b"\xd0\x0d\xfe\xed")}
    assert parse_manifest(out.read_text()) == manifest_of(boot)


@pytest.mark.parametrize(("argv", "named"), [
    (["--boot-files", "/nonexistent/boot", "--out", "{out}"], "--boot-files /nonexistent/boot: not a directory"),
    (["--boot-files", "{empty}", "--out", "{out}"], "no cmdline.txt, config.txt"),
    (["--out", "{out}"], "--boot-files"),
])
def test_the_writer_refuses_bad_input(tmp_path: Path, argv: list[str], named: str) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "manifest.json"
    done = write_manifest(*(a.format(out=out, empty=tmp_path / "empty") for a in argv))
    assert done.returncode == 2
    assert named in done.stderr
    assert not out.exists()


GOOD = {"format": 1, "boot_dir": "/boot/firmware", "cmdline": "console=tty1 root=LABEL=r",
        "files": {"cmdline.txt": DIGEST, "config.txt": DIGEST}}


@pytest.mark.parametrize(("change", "named"), [
    ({"format": 2}, "format 2, expected 1"),
    ({"boot_dir": "boot"}, "boot_dir 'boot': expected an absolute path"),
    ({"cmdline": " "}, "cmdline ' ': expected the kernel command line"),
    ({"files": {}}, "files: expected an object"),
    ({"files": {"cmdline.txt": "12", "config.txt": DIGEST}}, "files.cmdline.txt: '12' is not a sha256"),
    ({"files": {"cmdline.txt": DIGEST, "config.txt": DIGEST, "../etc/passwd": DIGEST}},
     "files.../etc/passwd: expected a name under boot_dir"),
    ({"files": {"cmdline.txt": DIGEST}}, "files: config.txt not recorded"),
])
def test_a_bad_manifest_is_named(change: dict[str, object], named: str) -> None:
    with pytest.raises(ManifestError, match=r"^/m\.json: ") as raised:
        parse_manifest(json.dumps({**GOOD, **change}), "/m.json")
    assert named in str(raised.value)
    assert parse_manifest(json.dumps(GOOD)).files == GOOD["files"]


def test_not_json_is_named_with_its_line() -> None:
    with pytest.raises(ManifestError, match=r"not JSON \(line 2"):
        parse_manifest('{"format": 1,\n oops}')
