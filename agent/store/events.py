"""The one way every part reports an event about the child (for the journal).

Events about the child never go to plain logs (DESIGN.md): adapters call
`EventSink.record`, and the daemon routes that to the encrypted journal. Kinds are a
closed set so the guardian's dashboard can chart them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

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
    DNS_BLOCKED = "dns_blocked"  # {domain, reason, count}: count lookups since the last one
    DNS_EVENTS_DROPPED = "dns_events_dropped"  # {lookups}: blocked lookups not itemised (a flood)
    TIME_REQUESTED = "time_requested"
    REPORT = "report"
    PURCHASE = "purchase"
    POLICY_LOADED = "policy_loaded"
    POLICY_REJECTED = "policy_rejected"
    PAIRED = "paired"  # a guardian paired the device (the keyring's genesis or a new family)
    USB_ALLOWED = "usb_allowed"  # {id, name, classes, reason}: a keyboard, mouse... accepted (recorded)
    DEVICE_ADDED = "device_added"  # {kind: network|block|input, name, ...}: agent/os/devicewatch.py
    # Tamper signs.
    CLOCK_JUMP = "clock_jump"
    TIMEZONE_CHANGE = "timezone_change"
    AGENT_START = "agent_start"
    GATE_OUTAGE = "gate_outage"
    FILTER_LIST_MISSING = "filter_list_missing"  # {categories}: blocked, but no list installed
    BAD_SIGNATURE = "bad_signature"
    RETENTION_PURGE = "retention_purge"
    STORAGE_FAILURE = "storage_failure"  # a store could not be written (a full disk)
    USB_BLOCKED = "usb_blocked"  # {id, name, classes, reason}: a USB device USBGuard kept out
    BOOT_TAMPER = "boot_tamper"  # {findings, ids}: boot files or kernel command line not as shipped
    # {first_damaged, left_out_from, left_out_to, records}: journal records damaged on the
    # device (a bit flipped on the card) that the dashboard refused; the upload went on past them
    JOURNAL_DAMAGED = "journal_damaged"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: datetime
    data: EventData = field(default_factory=dict)


class EventSink(Protocol):
    def record(self, event: Event) -> None:
        """Accept an event; once this returns the sink owns its durability."""


@runtime_checkable
class BatchEventSink(EventSink, Protocol):
    def record_many(self, events: Sequence[Event]) -> None:
        """Accept events together (the journal: one transaction); durable once it returns."""


def record_many(sink: EventSink, events: Sequence[Event]) -> None:
    """Hand `events` to `sink` together when it can take a batch, else one by one."""
    if isinstance(sink, BatchEventSink):
        sink.record_many(events)
        return
    for event in events:
        sink.record(event)


def occurrences(event: Event) -> int:
    """How many attempts one event stands for: a DNS batch's `count` of lookups of its
    name (agent.filter.eventbatch), a flood's `suppressed` attempts (agent.store.floodsink),
    otherwise one. The guardian's charts add these up."""
    for name in ("count", "suppressed"):
        n = event.data.get(name)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    return 1


class MemoryEventSink:
    """Keeps events in a list: for tests and the development mode's console."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.batches = 0  # record_many calls (tests check a batch is one hand-over)

    def record(self, event: Event) -> None:
        self.events.append(event)

    def record_many(self, events: Iterable[Event]) -> None:
        self.events.extend(events)
        self.batches += 1
