"""The exec gate's facts as journal events and as what the child is told.

The gate already deduplicates blocks per app and reason until the table changes; the
daemon records each `Blocked` it receives and shows the child one notification for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agent.execgate.catalogue import AppInfo
from agent.execgate.loop import Blocked
from agent.execgate.supervisor import GateOutage
from agent.locale import messages
from agent.store.events import Event, EventKind


def blocked_event(blocked: Blocked, at: datetime) -> Event:
    return Event(
        EventKind.APP_BLOCKED,
        at,
        {"app_id": blocked.app_id, "reason": blocked.reason, "path": blocked.path},
    )


def blocked_message(blocked: Blocked, apps: Mapping[str, AppInfo], language: str) -> str:
    """The notification text, in the child's language; unknown programs get a generic line."""
    info = apps.get(blocked.app_id) if blocked.app_id else None
    return messages.app_stopped(info.name if info else blocked.app_id, blocked.reason, language)


def outage_event(outage: GateOutage, at: datetime) -> Event:
    """GATE_OUTAGE at the start (phase "start") and at the end with its length."""
    data: dict[str, str | float | None] = {
        "phase": "start" if outage.started else "end",
        "cause": outage.cause,
    }
    if outage.seconds is not None:
        data["seconds"] = round(outage.seconds, 3)
    return Event(EventKind.GATE_OUTAGE, at, data)
