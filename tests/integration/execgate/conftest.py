"""Fixtures for the exec gate tests: a private tmpfs with fake apps and a running gate."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import gatekit

from agent.execgate.catalogue import AppInfo
from agent.execgate.loop import Blocked, ExecGate
from agent.execgate.table import GateConfig, GateTable, build_table


@dataclass
class GateEnv:
    fs: Path
    apps: dict[str, AppInfo]
    config: GateConfig
    gate: ExecGate
    blocked: list[Blocked]
    generation: int = 1

    def exe(self, name: str) -> str:
        return str(self.fs / "apps" / name)

    def table(self, **access_kw: object) -> GateTable:
        self.generation += 1
        return build_table(self.apps, gatekit.access(**access_kw), self.config, self.generation)  # type: ignore[arg-type]

    def set_policy(self, **access_kw: object) -> None:
        self.gate.update(self.table(**access_kw))


@pytest.fixture
def gate_env() -> Iterator[GateEnv]:
    if not gatekit.is_root():
        pytest.skip(gatekit.need_root_reason())
    with gatekit.private_tmpfs() as fs:
        apps, config = gatekit.layout(fs)
        blocked: list[Blocked] = []
        table = build_table(
            apps,
            gatekit.access(
                allowed=["org.example.Chess"],
                blocked=["org.example.Game"],
                always=["org.example.Phone"],
            ),
            config,
            1,
        )
        gate = ExecGate([str(fs)], table, on_blocked=blocked.append)
        gate.start()
        try:
            yield GateEnv(fs, apps, config, gate, blocked)
        finally:
            gate.stop()
