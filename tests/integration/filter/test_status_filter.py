"""`minormodectl status` shows the filter's problems (categories without a list) and the
DNS events a flood dropped, through the real service on a private bus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support.runtime import agent_on
from support.scenario import iso, policy
from support.sessionbus import CHILD_UID

from agent.api.agent_controller import AgentController
from agent.api.service import AgentService
from agent.cli.main import build_parser
from agent.dev import devbus
from agent.dev.clock import ManualClock
from agent.store.state import StateStore


async def test_status_names_categories_without_a_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = devbus.start_bus()
    agent = agent_on(StateStore(tmp_path / "state.sqlite"),
                     ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai"))
    agent.policy = policy()
    controller = AgentController(agent)
    controller.filter_facts = lambda: ("drugs: no list installed; violence: no list installed", 7)
    service = AgentService(controller, CHILD_UID, bus_address=bus.address)
    agent.tick()
    await service.start()
    try:
        for argv in (("status", "--bus", bus.address), ("status", "--bus", bus.address, "--json")):
            args = build_parser().parse_args(argv)
            assert await asyncio.to_thread(args.func, args) == 0
        text, js = capsys.readouterr().out.split("\n{", 1)
        assert "FILTER NOT IN FORCE: drugs: no list installed; violence: no list installed" in text
        assert "filter: 7 blocked lookups counted but not itemised" in text
        status = json.loads("{" + js)
        assert status["FilterProblems"].startswith("drugs:") and status["DnsEventsDropped"] == 7
    finally:
        await service.stop()
        agent.store.close()
        bus.stop()
