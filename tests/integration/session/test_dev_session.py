"""Development mode's session: counted, warned and locked on a private bus, no logind needed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.runtime import agent_on
from support.scenario import iso, policy
from support.sessionbus import until

from agent.dev.clock import ManualClock
from agent.dev.session import DevSession
from agent.store.state import StateStore


async def test_dev_session_counts_warns_and_locks(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minormode")
    clock = ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai")
    agent = agent_on(StateStore(tmp_path / "state.sqlite"), clock)
    agent.policy = policy(waive=["windows", "curfew", "school", "rest", "games"],
                          budget={"every_day": 6}, enforcement={"language": "en", "time_up": "lock"})
    dev = DevSession(agent)
    await dev.start()
    try:
        agent.tick()
        assert dev.layer is not None
        watcher = dev.layer.watcher
        assert watcher.counting is True  # the fake session is active: time counts
        clock.advance(60)
        agent.tick()
        assert "child sees warning: 5 minutes left. Time to finish up." in caplog.text
        clock.advance(300)
        agent.tick()
        assert "child sees time up (budget_spent)" in caplog.text
        await until(lambda: watcher.locked and watcher.counting is False, what="locked")
        assert agent.decision is not None and agent.decision.used_seconds == 360
        # The developer plays the child and unlocks: re-locked at once.
        enforcer = dev.layer.enforcer
        before = enforcer.stats.lock_calls
        await dev.unlock_as_child()
        await until(lambda: enforcer.stats.lock_calls > before and watcher.locked, timeout=2,
                    what="re-locked within 2 s")
    finally:
        await dev.stop()
        agent.store.close()
