"""Compile the `.po` catalogues into the `.mo` files gettext loads, with Debian's msgfmt.

One step for every place the agent runs from: `scripts/setup` (and `scripts/run-dev`)
compile next to the sources for a checkout, and the wheel's build (setup.py) compiles into
its build directory, so the image and a fresh clone both have them. msgfmt, the reference
compiler, also checks each catalogue (`--check`: syntax, header, plural forms) and fails
the build on a broken one. Only the standard library here: setup.py runs this in the
build's own environment.

    python -m agent.locale.compile              # next to the sources, when out of date
    python -m agent.locale.compile --out DIR    # DIR/<lang>/LC_MESSAGES/minormode.mo
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from agent.locale import LOCALE_DIR


def sources(root: Path = LOCALE_DIR) -> list[Path]:
    return sorted(root.glob("*/LC_MESSAGES/*.po"))


def compiled(po: Path, out: Path | None, root: Path = LOCALE_DIR) -> Path:
    """Where `po`'s `.mo` goes: beside it, or at the same place under `out`."""
    mo = po.with_suffix(".mo")
    return mo if out is None else out / mo.relative_to(root)


def compile_catalogues(out: Path | None = None, root: Path = LOCALE_DIR) -> list[Path]:
    """Compile every catalogue whose `.mo` is missing or older than its `.po`; the
    `.mo` files written."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        raise SystemExit("compile: msgfmt not found: install Debian's gettext package "
                         "(scripts/setup does, from config/deps/apt-base.txt)")
    written = []
    for po in sources(root):
        mo = compiled(po, out, root)
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        part = mo.with_suffix(".mo.part")
        result = subprocess.run([msgfmt, "--check", "-o", str(part), str(po)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            part.unlink(missing_ok=True)
            raise SystemExit(f"compile: {po}: msgfmt failed:\n{result.stderr.strip()}")
        part.replace(mo)
        written.append(mo)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.locale.compile",
                                     description="Compile the .po catalogues into .mo files (msgfmt).")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write DIR/<lang>/LC_MESSAGES/*.mo (default: beside each .po)")
    args = parser.parse_args(argv)
    for mo in compile_catalogues(args.out):
        print(f"compile: {mo}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
