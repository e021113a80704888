"""The guardian dashboard (a coming top-level package) never imports the device agent.

import-linter cannot hold a contract on a package that does not exist yet, so this scans
dashboard/ itself: every `import agent...` / `from agent... import` in its Python files.
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


def test_dashboard_never_imports_agent() -> None:
    dashboard = ROOT / "dashboard"
    if not dashboard.is_dir():
        pytest.skip("no dashboard package yet")
    assert agent_imports(dashboard) == []


def test_the_scan_finds_every_form_of_an_agent_import(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "app.py").write_text(
        "import agentless\nfrom . import agent\nimport json, agent.core.policy\n"
        "def f():\n    from agent import daemon\n")
    (tmp_path / "ok.py").write_text("from protocol import envelope\n")
    assert agent_imports(tmp_path) == ["server/app.py:3 agent.core.policy", "server/app.py:5 agent"]
