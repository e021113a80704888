"""The wheel the image installs carries the compiled catalogues, built from a fresh clone
(the tracked files only: no `.mo` a checkout compiled), offline with the venv's backend."""

from __future__ import annotations

import gettext
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent.core.messages import DOMAIN, KEYS
from agent.locale.messages import LANGUAGES, gettext_name, load

ROOT = Path(__file__).parents[3]


@pytest.mark.slow
def test_the_wheel_from_a_fresh_clone_has_every_catalogue(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    assert not list(src.rglob("*.mo"))
    out = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(src)], check=True, capture_output=True)
    [wheel] = out.glob("minormode-*.whl")
    with zipfile.ZipFile(wheel) as z:
        for lang in LANGUAGES:
            path = f"agent/locale/{gettext_name(lang)}/LC_MESSAGES/{DOMAIN}.mo"
            shipped = gettext.GNUTranslations(io.BytesIO(z.read(path)))
            here = load(lang)
            assert {k: shipped.gettext(k) for k in KEYS} == {k: here.gettext(k) for k in KEYS}, lang
