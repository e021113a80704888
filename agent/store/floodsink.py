"""The EventSink in front of the journal that bounds what the child can make it write.

The event kinds a child can cause at will (`agent.core.flood.CHILD_LIMITS`) pass a flood
gate per kind, keyed so that a flood of varied attempts still shares one bucket (a blocked
lookup by its last two labels, so random subdomains count as one site; a blocked exec by
its app, every unknown program as one). What the gates refuse is counted in memory and
written by `flush` (StoreMaintenance, every `FLUSH_EVERY` s and at exit) as one event per
(kind, key) with `"suppressed": n` and no request id, so it is never mistaken for a
request the guardian must answer. Writers that must tell the child "no" (the D-Bus
methods: reports, time requests, purchases) call `admit` first and refuse the call; their
events are not gated again on `record`. Thread-safe: the DNS filter records from its own
thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from agent.core.flood import CHILD_LIMITS, OVERFLOW, FloodGates, Limit
from agent.store.events import Event, EventKind, EventSink, occurrences, record_many

MAX_KEYS_PER_FLUSH = 20  # aggregated events per kind and flush; the rest are summed under "*"
FLUSH_EVERY = 300.0  # seconds between flushes (StoreMaintenance)


def _site(event: Event) -> str:
    labels = str(event.data.get("domain") or "").rstrip(".").split(".")
    return ".".join(labels[-2:]) or "unknown"


def _app(event: Event) -> str:
    return str(event.data.get("app_id") or "unknown")


def _kind(event: Event) -> str:
    return str(event.data.get("kind") or event.kind.value)


# kind -> (the key an event is paced by, the field of the aggregated event that names it)
KEYS: Mapping[EventKind, tuple[Callable[[Event], str], str]] = {
    EventKind.DNS_BLOCKED: (_site, "domain"),
    EventKind.APP_BLOCKED: (_app, "app_id"),
    EventKind.REPORT: (_kind, "kind"),
    EventKind.TIME_REQUESTED: (_kind, "kind"),
    EventKind.PURCHASE: (_app, "app_id"),
}
GATED_ON_RECORD = frozenset({EventKind.DNS_BLOCKED, EventKind.APP_BLOCKED})


class FloodSink:
    def __init__(self, inner: EventSink, clock: Callable[[], datetime],
                 limits: Mapping[str, Limit] = CHILD_LIMITS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`clock` stamps the aggregated events (trusted time); `monotonic` paces the gates."""
        self.inner, self.clock, self.monotonic = inner, clock, monotonic
        self._gates = FloodGates(limits)
        self._lock = threading.Lock()

    def admit(self, kind: str, key: str, weight: int = 1) -> bool:
        """May one more `kind` event for `key` be written now? (a refusal is counted as
        the `weight` attempts the event stood for)"""
        with self._lock:
            return self._gates.admit(kind, key, self.monotonic(), weight)

    def _passes(self, event: Event) -> bool:
        return event.kind not in GATED_ON_RECORD or self.admit(
            event.kind.value, KEYS[event.kind][0](event), occurrences(event))

    def record(self, event: Event) -> None:
        if self._passes(event):
            self.inner.record(event)

    def record_many(self, events: Sequence[Event]) -> None:
        """The DNS filter's batch (each event a name's `count` of lookups): gated per site
        like single events, and what passes handed on together (one journal transaction)."""
        record_many(self.inner, [event for event in events if self._passes(event)])

    def flush(self) -> int:
        """Write what the gates refused as one aggregated event per (kind, key)."""
        with self._lock:
            drained = self._gates.drain()
        written = 0
        at = self.clock()
        for kind_value, refused in drained.items():
            kind = EventKind(kind_value)
            field = KEYS[kind][1] if kind in KEYS else "key"
            ranked = sorted(refused.items(), key=lambda kv: (-kv[1], str(kv[0])))
            kept = {str(k): n for k, n in ranked[:MAX_KEYS_PER_FLUSH]}
            rest = sum(n for _k, n in ranked[MAX_KEYS_PER_FLUSH:])
            if rest:
                kept[OVERFLOW] = kept.get(OVERFLOW, 0) + rest
            for key, n in kept.items():
                self.inner.record(Event(kind, at, {field: key, "reason": "flood", "suppressed": n}))
                written += 1
        return written
