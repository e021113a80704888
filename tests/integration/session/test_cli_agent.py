"""minormodectl's agent subcommands against the real service on a private bus (as root)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.runtime import agent_on
from support.scenario import iso, policy
from support.sessionbus import CHILD_UID

from agent.api.agent_controller import AgentController
from agent.api.service import AgentService
from agent.cli.main import build_parser
from agent.core import guardian_code
from agent.dev import devbus
from agent.dev.clock import ManualClock
from agent.runtime.agent import Agent
from agent.store.state import StateStore


@pytest.fixture
async def agent_bus(tmp_path: Path) -> AsyncIterator[tuple[str, Agent]]:
    bus = devbus.start_bus()
    agent = agent_on(StateStore(tmp_path / "state.sqlite"),
                     ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai"))
    agent.policy = policy(waive=["windows", "curfew", "school", "rest", "games"],
                          budget={"every_day": 10})
    service = AgentService(AgentController(agent), CHILD_UID, bus_address=bus.address)
    agent.subscribe(service.refresh)
    agent.tick()
    await service.start()
    try:
        yield bus.address, agent
    finally:
        await service.stop()
        agent.store.close()
        bus.stop()


async def ctl(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    result: int = await asyncio.to_thread(args.func, args)
    return result


async def test_agent_subcommands(agent_bus: tuple[str, Agent], capsys: pytest.CaptureFixture[str],
                                 tmp_path: Path) -> None:
    address, agent = agent_bus
    assert await ctl("status", "--bus", address) == 0
    assert "unlocked: 10 min left" in capsys.readouterr().out
    # root is not the child: refused, exit 1
    assert await ctl("ask-time", "10", "--bus", address) == 1
    assert "AccessDenied" in capsys.readouterr().err
    assert await ctl("grant", "15", "--reason", "visit", "--bus", address) == 0
    assert agent.decision is not None and agent.decision.budget_seconds == 25 * 60
    assert await ctl("grant", "721", "--bus", address) == 2
    assert "minutes: 721 is outside 1..720" in capsys.readouterr().err
    assert await ctl("load", str(tmp_path / "missing.toml"), "--bus", address) == 2
    with pytest.raises(SystemExit) as bad:
        await ctl("grant", "zero", "--bus", address)
    assert bad.value.code == 2


async def test_guardian_code_from_a_secret_file(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    secret = bytes(range(32))
    (tmp_path / "secret").write_text(secret.hex())
    before = datetime.now(UTC)
    assert await ctl("guardian-code", "--secret-file", str(tmp_path / "secret")) == 0
    shown = capsys.readouterr().out.strip()
    assert shown in {guardian_code.code_at(secret, before + timedelta(seconds=s)) for s in (0, 30)}
    (tmp_path / "bad").write_text("not hex")
    assert await ctl("guardian-code", "--secret-file", str(tmp_path / "bad")) == 2
    assert "bad" in capsys.readouterr().err


async def test_status_json_carries_what_the_text_shows(agent_bus: tuple[str, Agent],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    address, agent = agent_bus
    assert await ctl("status", "--bus", address) == 0
    text = capsys.readouterr().out
    assert await ctl("status", "--bus", address, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["RemainingSeconds"] == 600 and data["Locked"] is False
    assert "unlocked: 10 min left" in text
    assert data["PolicyVersion"] == agent.policy.version
    assert f"age band {data['AgeBand']}, policy version {data['PolicyVersion']}" in text
    assert data["Timezone"] == agent.policy.timezone and f"times in {data['Timezone']}" in text
    used, budget = data["UsedSeconds"] // 60, data["BudgetSeconds"] // 60
    assert f"used today: {used} min of {budget} min" in text


async def test_no_agent_on_the_bus_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    bus = devbus.start_bus()
    try:
        assert await ctl("status", "--bus", bus.address) == 3
        assert "the agent is not running" in capsys.readouterr().err
        assert await ctl("grant", "5", "--bus", bus.address) == 3
    finally:
        bus.stop()
