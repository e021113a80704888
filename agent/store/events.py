"""The one way every part reports an event about the child (for the journal).

Events about the child never go to plain logs (DESIGN.md): adapters call
`EventSink.record`, and the daemon routes that to the encrypted journal. Kinds are a
closed set so the guardian's dashboard can chart them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

JSONScalar = str | int | float | bool | None
EventData = Mapping[str, JSONScalar | list[JSONScalar]]


class EventKind(StrEnum):
    APP_BLOCKED = "app_blocked"
    APP_STOPPED = "app_stopped"
    LOCK = "lock"
    UNLOCK = "unlock"
    WARNING = "warning"
    REST_REMINDER = "rest_reminder"
    GRANT_USED = "grant_used"
    DNS_BLOCKED = "dns_blocked"
    TIME_REQUESTED = "time_requested"
    REPORT = "report"
    PURCHASE = "purchase"
    POLICY_LOADED = "policy_loaded"
    POLICY_REJECTED = "policy_rejected"
    PAIRED = "paired"  # a guardian paired the device (the keyring's genesis or a new family)
    # Tamper signs.
    CLOCK_JUMP = "clock_jump"
    TIMEZONE_CHANGE = "timezone_change"
    AGENT_START = "agent_start"
    GATE_OUTAGE = "gate_outage"
    BAD_SIGNATURE = "bad_signature"
    RETENTION_PURGE = "retention_purge"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: datetime
    data: EventData = field(default_factory=dict)


class EventSink(Protocol):
    def record(self, event: Event) -> None:
        """Accept an event; once this returns the sink owns its durability."""


class MemoryEventSink:
    """Keeps events in a list: for tests and the development mode's console."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        self.events.append(event)
