"""The guardian's side never imports the device agent: the dashboard (a coming top-level
package) and protocol/ (what both sides share, `cryptography` alone; DESIGN.md).

import-linter cannot hold a contract on a package that does not exist yet (and its root is
`agent`), so this scans those trees itself: every `import agent...` / `from agent... import`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]


def agent_imports(tree_root: Path) -> list[str]:
    """`file:line module` for every import of the agent package under `tree_root`."""
    found: list[str] = []
    for path in sorted(tree_root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(tree_root)}:{node.lineno} {n}" for n in names
                      if n == "agent" or n.startswith("agent.")]
    return found


@pytest.mark.parametrize("package", ["dashboard", "protocol"])
def test_the_guardian_side_never_imports_agent(package: str) -> None:
    tree = ROOT / package
    if not tree.is_dir():
        pytest.skip(f"no {package} package in this tree yet")
    assert agent_imports(tree) == []


def test_the_scan_finds_every_form_of_an_agent_import(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "app.py").write_text(
        "import agentless\nfrom . import agent\nimport json, agent.core.policy\n"
        "def f():\n    from agent import daemon\n")
    (tmp_path / "ok.py").write_text("from protocol import envelope\n")
    assert agent_imports(tmp_path) == ["server/app.py:3 agent.core.policy", "server/app.py:5 agent"]
