"""Fixtures for the exec gate tests: a private tmpfs with fake apps and a running gate."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import gatekit

from agent.os.catalogue import AppInfo, scan
from agent.os.execgate import Blocked, ExecGate
from agent.os.gatetable import GateConfig, GateTable, build_table


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


def layout(fs: Path) -> tuple[dict[str, AppInfo], GateConfig]:
    """Three apps (distinct binaries), a base helper, a child-writable home, a shared dir."""
    apps_dir = fs / "apps"
    gatekit.make_binary(apps_dir / "game", tag="game")
    gatekit.make_binary(apps_dir / "chess", tag="chess")
    gatekit.make_binary(apps_dir / "phone", tag="phone")
    gatekit.make_binary(fs / "base" / "helper", tag="helper")
    for d, mode in (("home", 0o777), ("shared", 0o1777), ("opt", 0o755)):
        (fs / d).mkdir(mode=mode)
        (fs / d).chmod(mode)
    desktop = fs / "share" / "applications"
    gatekit.write_desktop(desktop, "org.example.Game", "Game", apps_dir / "game", "Game;")
    gatekit.write_desktop(desktop, "org.example.Chess", "Chess", apps_dir / "chess", "Education;")
    gatekit.write_desktop(desktop, "org.example.Phone", "Phone", apps_dir / "phone", "Telephony;")
    result = scan([str(desktop)])
    assert not result.errors, result.errors
    config = GateConfig(
        also_restricted=frozenset({gatekit.CHILD_UID}),
        base_prefixes=(f"{fs}/base/",),
        child_writable=(f"{fs}/home/", f"{fs}/tmp/"),
        hash_deadline=1.0,
    )
    return result.apps, config


@pytest.fixture
def gate_env() -> Iterator[GateEnv]:
    if not gatekit.is_root():
        pytest.skip(gatekit.need_root_reason())
    with gatekit.private_tmpfs() as fs:
        apps, config = layout(fs)
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
