"""Guardian-code back-off, used codes and pending requests survive a restart or reboot:
otherwise rebooting would reset the rate limit on guessing the guardian's code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from support.runtime import agent_on
from support.scenario import policy

from agent.api.agent_controller import AgentController
from agent.core import guardian_code
from agent.dev.clock import ManualClock
from agent.store.state import StateStore

SECRET = b"0123456789abcdef-guardian"
T0 = datetime(2026, 11, 23, 8, 0, 10, tzinfo=UTC)


def restart(tmp: Path, clock: ManualClock) -> AgentController:
    agent = agent_on(StateStore(tmp / "state.sqlite"), clock)
    agent.policy = policy(enforcement={"language": "en"})
    agent.tick()
    return AgentController(agent, guardian_secret=SECRET)


def test_back_off_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    ctl = restart(tmp_path, clock)
    right = guardian_code.code_at(SECRET, T0)
    wrong = "00000000" if right != "00000000" else "11111111"
    for _ in range(5):
        assert not ctl.enter_guardian_code(wrong).granted
    ctl.agent.store.close()
    clock.reboot("boot-2")
    again = restart(tmp_path, clock)
    result = again.enter_guardian_code(right)
    assert not result.granted
    assert "Too many wrong codes" in result.message


def test_a_used_code_stays_used_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    ctl = restart(tmp_path, clock)
    code = guardian_code.code_at(SECRET, T0)
    assert ctl.enter_guardian_code(code).granted
    ctl.agent.store.close()
    again = restart(tmp_path, clock)
    assert again.enter_guardian_code(code).message == "That guardian code was already used."


def test_pending_requests_survive_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    ctl = restart(tmp_path, clock)
    rid = ctl.request_more_time(15, "homework")
    ctl.agent.store.close()
    again = restart(tmp_path, clock)
    assert rid in again.pending and again.pending[rid].minutes == 15
    assert again.answer_request(rid, approved=True)
    assert rid not in restart(tmp_path, clock).pending
