"""The exec gate's facts as journal events and as what the child is told.

The gate already deduplicates blocks per app and reason until the table changes; the
daemon records each `Blocked` it receives and shows the child one notification for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agent.core.decision import AppBlockReason
from agent.execgate.catalogue import AppInfo
from agent.execgate.loop import Blocked
from agent.execgate.supervisor import GateOutage
from agent.store.events import Event, EventKind


def blocked_event(blocked: Blocked, at: datetime) -> Event:
    return Event(
        EventKind.APP_BLOCKED,
        at,
        {"app_id": blocked.app_id, "reason": blocked.reason, "path": blocked.path},
    )


def blocked_message(blocked: Blocked, apps: Mapping[str, AppInfo]) -> str:
    """The notification text; unknown programs get a generic line."""
    info = apps.get(blocked.app_id) if blocked.app_id else None
    name = info.name if info else (blocked.app_id or "This program")
    if blocked.reason == AppBlockReason.LIMIT_SPENT.value:
        return f"{name}'s time for today is used up"
    return f"{name} is not allowed now"


def outage_event(outage: GateOutage, at: datetime) -> Event:
    """GATE_OUTAGE at the start (phase "start") and at the end with its length."""
    data: dict[str, str | float | None] = {
        "phase": "start" if outage.started else "end",
        "cause": outage.cause,
    }
    if outage.seconds is not None:
        data["seconds"] = round(outage.seconds, 3)
    return Event(EventKind.GATE_OUTAGE, at, data)
