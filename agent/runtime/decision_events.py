"""The moments of a day the guardian's report shows, as journal events: locks, unlocks,
warnings and rest reminders (the enforcement layers act on the same transitions).

`transitions(decision, previous)` is pure: it compares two consecutive Decisions, so a
lock is recorded once when it begins (with why, and until when), not at every tick.
"""

from __future__ import annotations

from agent.core.decision import Decision
from agent.store.events import Event, EventKind, EventSink


def transitions(decision: Decision, previous: Decision | None) -> list[Event]:
    at, out = decision.at, []
    was_locked = previous is not None and previous.locked
    new_reason = previous is not None and previous.reasons != decision.reasons
    if decision.locked and (not was_locked or new_reason):
        out.append(Event(EventKind.LOCK, at, {
            "reasons": [r.value for r in decision.reasons], "used_seconds": decision.used_seconds,
            "until": decision.unlock_at.isoformat() if decision.unlock_at else None}))
    elif was_locked and not decision.locked:
        out.append(Event(EventKind.UNLOCK, at, {"used_seconds": decision.used_seconds,
                                                "minor_mode": decision.minor_mode}))
    if decision.warning_due and (previous is None or previous.warning_due != decision.warning_due):
        out.append(Event(EventKind.WARNING, at, {"minutes_left": decision.warning_due}))
    if decision.rest_reminder_due and (previous is None or not previous.rest_reminder_due
                                       or previous.rest_streak_start != decision.rest_streak_start):
        out.append(Event(EventKind.REST_REMINDER, at, {"continuous_seconds": decision.continuous_seconds}))
    return out


class DecisionRecorder:
    """A Decision subscriber that records the transitions (the Agent subscribes it first)."""

    def __init__(self, events: EventSink) -> None:
        self.events = events

    def __call__(self, decision: Decision, previous: Decision | None) -> None:
        for event in transitions(decision, previous):
            self.events.record(event)
