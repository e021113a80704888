"""The wheel's one build step beyond pyproject.toml: compile the gettext catalogues.

pyproject.toml holds the project's metadata; this only makes `build_py` run
`python -m agent.locale.compile --out <build dir>/agent/locale` (Debian's msgfmt), so every
wheel (the image's, `python -m build`, `pip install .`) carries the `.mo` files the agent
loads. An editable install uses the source tree, where scripts/setup compiles them.
"""

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            out = Path(self.build_lib) / "agent" / "locale"
            subprocess.run([sys.executable, "-m", "agent.locale.compile", "--out", str(out)],
                           cwd=ROOT, check=True)


setup(cmdclass={"build_py": BuildWithCatalogues})
