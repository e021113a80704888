"""agent/core imports no OS code and never reads the clock (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).parents[3] / "agent" / "core"
FORBIDDEN_MODULES = {
    "os", "sys", "time", "socket", "subprocess", "asyncio", "threading", "signal", "shutil",
    "sqlite3", "ctypes", "psutil", "dbus_fast", "random", "secrets", "uuid",
    "agent.os", "agent.store", "agent.api", "agent.filter", "agent.sync", "agent.daemon",
    "agent.runtime", "agent.session", "agent.dev", "agent.cli", "agent.helper",
}
FORBIDDEN_CALLS = {"now", "today", "utcnow", "time", "monotonic", "perf_counter", "clock_gettime"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert not any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES), (
                f"{path.name}:{node.lineno} imports {name}"
            )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} calls .{node.func.attr}()"
