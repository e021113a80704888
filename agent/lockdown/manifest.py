"""The boot manifest: what the image shipped on its boot partition, so the audit (and the
agent at each boot) can tell an edited kernel command line or boot configuration.

The boot partition is FAT: anyone with a card reader can edit `cmdline.txt` (init=/bin/sh)
or swap the initramfs. Without secure boot this is detection, not prevention: the root
file system holds the record, the boot partition is compared against it.

Where: /usr/lib/minormode/boot-manifest.json in the root file system (written by the
image build; read only). Format 1, JSON:

    {"format": 1,
     "boot_dir": "/boot/firmware",                 # where the partition is mounted
     "cmdline": "console=tty1 root=LABEL=...",     # cmdline.txt's text, stripped
     "files": {"cmdline.txt": "<sha256 hex>", "config.txt": "<sha256 hex>", ...}}

`files` names every file on the boot partition the image wrote (names relative to
boot_dir; cmdline.txt and config.txt at least). Written by
`python -m agent.lockdown.manifest --boot-files DIR --out FILE`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST = "/usr/lib/minormode/boot-manifest.json"
FORMAT = 1
BOOT_DIR = "/boot/firmware"
REQUIRED_FILES = ("cmdline.txt", "config.txt")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest that cannot be trusted to compare against, named with what is wrong."""


@dataclass(frozen=True)
class BootManifest:
    boot_dir: str
    cmdline: str
    files: Mapping[str, str]  # name under boot_dir -> sha256 hex

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "boot_dir": self.boot_dir, "cmdline": self.cmdline,
                           "files": dict(sorted(self.files.items()))}, indent=2) + "\n"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_manifest(text: str, where: str = MANIFEST) -> BootManifest:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object")
    if data.get("format") != FORMAT:
        raise ManifestError(f"{where}: format {data.get('format')!r}, expected {FORMAT}")
    boot_dir, cmdline, files = data.get("boot_dir"), data.get("cmdline"), data.get("files")
    if not isinstance(boot_dir, str) or not boot_dir.startswith("/"):
        raise ManifestError(f"{where}: boot_dir {boot_dir!r}: expected an absolute path")
    if not isinstance(cmdline, str) or not cmdline.strip():
        raise ManifestError(f"{where}: cmdline {cmdline!r}: expected the kernel command line")
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{where}: files: expected an object of name -> sha256")
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ManifestError(f"{where}: files.{name}: {digest!r} is not a sha256 hex digest")
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            raise ManifestError(f"{where}: files.{name}: expected a name under boot_dir")
    missing = [n for n in REQUIRED_FILES if n not in files]
    if missing:
        raise ManifestError(f"{where}: files: {', '.join(missing)} not recorded")
    return BootManifest(boot_dir=boot_dir.rstrip("/") or "/", cmdline=cmdline.strip(), files=files)


def manifest_of(boot_files: Path, boot_dir: str = BOOT_DIR) -> BootManifest:
    """The manifest of the files the image puts on its boot partition (a directory)."""
    files = {str(p.relative_to(boot_files)): sha256_hex(p.read_bytes())
             for p in sorted(boot_files.rglob("*")) if p.is_file()}
    missing = [n for n in REQUIRED_FILES if n not in files]
    if missing:
        raise ManifestError(f"{boot_files}: no {', '.join(missing)}")
    cmdline = (boot_files / "cmdline.txt").read_text().strip()
    return BootManifest(boot_dir=boot_dir, cmdline=cmdline, files=files)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.lockdown.manifest",
                                     description="Write the boot manifest of an image's boot files.")
    parser.add_argument("--boot-files", type=Path, required=True,
                        help="the directory that becomes the boot partition")
    parser.add_argument("--boot-dir", default=BOOT_DIR, help=f"where it is mounted (default {BOOT_DIR})")
    parser.add_argument("--out", type=Path, required=True, help=f"the file to write (the image's {MANIFEST})")
    args = parser.parse_args(argv)
    if not args.boot_files.is_dir():
        parser.error(f"--boot-files {args.boot_files}: not a directory")
    try:
        manifest = manifest_of(args.boot_files, args.boot_dir)
    except ManifestError as exc:
        parser.error(str(exc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(manifest.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
