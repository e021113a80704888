"""The dashboard never imports the agent (DESIGN.md: each side installs without the other's
dependencies); it shares only `protocol`. Checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import dashboard

ROOT = Path(dashboard.__file__).parent


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_dashboard_never_imports_agent() -> None:
    modules = sorted(ROOT.rglob("*.py"))
    assert len(modules) > 20
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in imported(p) if n.split(".")[0] == "agent")
                 for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert any("protocol" in n for p in modules for n in imported(p))  # the check reads real imports
