"""Play use of the device through `decide` on a simulated clock: a day runs in milliseconds.

The child wants to use the device whenever `wants_use(t)` says so; time counts only while
the device is unlocked. Each change of what the child sees (lock, unlock, warning, rest
reminder) becomes a timeline entry. Used by `minormodectl simulate` and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.core.activity import ActivityTracker, add_closed
from agent.core.decide import decide
from agent.core.decision import Decision
from agent.core.grants import Grant
from agent.core.policy import Policy
from agent.core.usage import Usage

MAX_STEP = timedelta(minutes=1)


@dataclass(frozen=True)
class Entry:
    at: datetime
    what: str  # "locked", "unlocked", "warning", "rest_reminder"
    decision: Decision


def simulate(
    policy: Policy,
    start: datetime,
    end: datetime,
    wants_use: Callable[[datetime], bool],
    grants: Iterable[Grant] = (),
    usage: Usage | None = None,
) -> tuple[list[Entry], Usage]:
    grants = tuple(grants)
    tracker, stored = ActivityTracker(), usage or Usage()
    entries: list[Entry] = []
    t = start
    last: tuple[bool, tuple[object, ...], int | None, bool] | None = None
    while t < end:
        decision = decide(policy, t, tracker.usage_at(stored, t), grants)
        tracker, closed = tracker.set_counting(wants_use(t) and not decision.locked, t)
        stored = add_closed(stored, closed)
        state = (decision.locked, decision.reasons, decision.warning_due, decision.rest_reminder_due)
        if last is None or state[:2] != last[:2]:
            entries.append(Entry(t, "locked" if decision.locked else "unlocked", decision))
        elif decision.warning_due is not None and decision.warning_due != last[2]:
            entries.append(Entry(t, "warning", decision))
        if decision.rest_reminder_due and (last is None or not last[3]):
            entries.append(Entry(t, "rest_reminder", decision))
        last = state
        step = t + MAX_STEP
        if decision.next_change is not None:
            step = min(step, decision.next_change.at)
        t = min(max(step, t + timedelta(seconds=1)), end)
    tracker, closed = tracker.checkpoint(end)
    return entries, add_closed(stored, closed)
