"""Print the image's manifest (JSON) from the finished root filesystem and boot files.

Every Debian package installed (from the image's dpkg status), the packages unpacked
outside dpkg (kernel, firmware, busybox), every Python package in the agent's venv, the
agent's version and the factory settings. build.sh adds the image's sha256.
Environment: MM_ROOT, MM_BOOT, MM_KERNEL_DIR, MM_KVER, MM_VARIANT, MM_FACTORY, MM_POLICY.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from email.parser import HeaderParser
from pathlib import Path


def dpkg_packages(root: Path) -> list[dict[str, str]]:
    out = []
    for stanza in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace()
        )
        if fields.get("Status", "").endswith(" installed"):
            out.append({"name": fields["Package"], "version": fields["Version"],
                        "architecture": fields.get("Architecture", "")})
    return sorted(out, key=lambda p: p["name"])


def python_packages(root: Path) -> list[dict[str, str]]:
    out = []
    for meta in root.glob("opt/minormode/venv/lib/python3*/site-packages/*.dist-info/METADATA"):
        headers = HeaderParser().parsestr(meta.read_text(errors="replace"), headersonly=True)
        out.append({"name": headers["Name"], "version": headers["Version"]})
    return sorted(out, key=lambda p: p["name"].lower())


def main() -> int:
    env = os.environ
    root, kernel_dir = Path(env["MM_ROOT"]), Path(env["MM_KERNEL_DIR"])
    unpacked = []
    for line in (kernel_dir / "packages.tsv").read_text().splitlines():
        name, version = line.split("\t")
        unpacked.append({"name": name, "version": version})
    kver = env["MM_KVER"]
    kernel_pkg = next((p for p in unpacked if p["name"] == f"linux-image-{kver}"), None)
    if kernel_pkg is None:
        sys.exit(f"manifest: linux-image-{kver} is not among the unpacked packages")
    python = python_packages(root)
    agent = next((p for p in python if p["name"] == "minormode"), None)
    if agent is None:
        sys.exit("manifest: the minormode agent is not installed in /opt/minormode/venv")
    manifest = {
        "format": 1,
        "variant": env["MM_VARIANT"],
        "agent": {"name": "minormode", "version": agent["version"],
                  "install": "/opt/minormode/venv", "wheel": Path(env["MM_WHEEL"]).name,
                  "debian_package": Path(env["MM_DEB"]).name},
        "kernel": {"package": kernel_pkg["name"], "version": kernel_pkg["version"], "release": kver,
                   "boot_files": sorted(p.name for p in Path(env["MM_BOOT"]).iterdir())},
        "factory": tomllib.loads(Path(env["MM_FACTORY"]).read_text()),
        "default_policy": Path(env["MM_POLICY"]).name,
        "debian_packages": dpkg_packages(root),
        "unpacked_packages": unpacked,
        "python_packages": python,
        "units_enabled": sorted(
            p.name for d in (root / "etc/systemd/system").glob("*.wants") for p in d.iterdir()
            if p.name.startswith("minormode")
        ),
    }
    json.dump(manifest, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
