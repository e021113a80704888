"""Locks, unlocks, warnings and rest reminders reach the journal once each, as they happen;
and every event kind the journal defines is recorded somewhere in the agent."""

from __future__ import annotations

import re
from pathlib import Path

from support.scenario import Scenario, policy

from agent.store.events import EventKind

ROOT = Path(__file__).parents[3]


def test_a_day_with_a_warning_a_lock_and_an_unlock(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(waive=["windows", "curfew", "school", "games"], budget={"every_day": 40},
                                  rest={"after_minutes": 30, "break_minutes": 10}), "2026-11-24T10:00")
    s.active().at("2026-11-24T10:45")
    kinds = [e.kind for e in s.store.events() if e.kind in (EventKind.LOCK, EventKind.UNLOCK, EventKind.WARNING,
                                                           EventKind.REST_REMINDER)]
    assert kinds.count(EventKind.WARNING) == 2  # 5 and 1 minutes before the lock, once each
    assert kinds.count(EventKind.REST_REMINDER) == 1
    assert kinds.count(EventKind.LOCK) == 1 and kinds[-1] is EventKind.LOCK
    lock = next(e for e in s.store.events(EventKind.LOCK))
    assert lock.data["reasons"] == ["budget_spent"] and lock.data["used_seconds"] == 40 * 60
    s.at("2026-11-25T00:01")
    assert [e.kind for e in s.store.events(EventKind.UNLOCK)] == [EventKind.UNLOCK]


def test_every_event_kind_is_recorded_somewhere_in_the_agent() -> None:
    """A kind nobody records is a chart the guardian can never see filled."""
    source = "\n".join(p.read_text() for p in (ROOT / "agent").rglob("*.py") if p.name != "events.py")
    missing = [k.name for k in EventKind if not re.search(rf"EventKind\.{k.name}\b", source)]
    assert missing == []
