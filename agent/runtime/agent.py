"""The running agent: the one state machine between the pure core and every OS layer.

Each tick reads the trusted clock, commits usage in small pieces, computes the Decision
and hands it to every enforcement layer that subscribed. Layers report facts back (the
session counts or not, an app started or stopped) through the methods of `Agent`; none of
them holds policy logic. A policy takes effect in one place only, `apply_policy`: stored
as the last good policy, recorded as an event, logged, and the layers re-decided.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from agent.api.port import PolicyLoad
from agent.core.activity import ActivityTracker, Closed, add_closed
from agent.core.calendar import day_span, local_day, zone
from agent.core.decide import decide
from agent.core.decision import Decision
from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.parse import (
    PolicyError,
    default_policy,
    load_policy_file,
    policy_from_mapping,
    policy_to_mapping,
)
from agent.core.policy import AgeBand, Policy
from agent.core.usage import Usage
from agent.os import sdnotify
from agent.runtime.clock import TrustedClock
from agent.store.events import Event, EventKind, EventSink
from agent.store.state import StateStore

log = logging.getLogger("minormode.agent")

CHECKPOINT = timedelta(seconds=10)  # usage is committed at least this often
MAX_SLEEP = 5.0  # seconds of clock time between ticks at most

Subscriber = Callable[[Decision, Decision | None], None]


class Agent:
    """State and decisions; drive it with `tick()` (tests) or `run()` (the daemon).

    Implements `agent.api.port.AgentPort` for the D-Bus controller.
    """

    def __init__(self, store: StateStore, clock: TrustedClock, policy_path: Path | None,
                 fallback_band: AgeBand = AgeBand.AGE_8_12, events: EventSink | None = None) -> None:
        self.store, self.clock, self.policy_path = store, clock, policy_path
        self.events: EventSink = events or store  # the encrypted journal in the daemon
        self.fallback_band = fallback_band
        self.tracker = ActivityTracker()
        self.policy: Policy = self._last_good_policy()
        self.decision: Decision | None = None
        self.subscribers: list[Subscriber] = []
        self._committed = Usage()
        self._committed_from: date | None = None
        self._last_checkpoint: datetime | None = None
        self._wake = asyncio.Event()
        self.stopping = False
        clock.on_resync(self._resynced)

    # ------------------------------------------------------------------ policy

    def _last_good_policy(self) -> Policy:
        """The last policy that loaded; never "unlimited": the band defaults otherwise."""
        saved = self.store.last_policy()
        if saved is not None:
            try:
                return policy_from_mapping(saved[2], f"<last good policy v{saved[0]}>")
            except PolicyError as exc:
                log.error("stored policy unreadable, using the band defaults: %s", exc)
        return default_policy(self.fallback_band)

    def load_policy(self, path: Path | None = None) -> PolicyLoad:
        """Load a policy file; a bad or older one changes nothing and is recorded."""
        path = path or self.policy_path
        if path is None:
            return PolicyLoad(False, "no policy file configured")
        try:
            policy = load_policy_file(path)
        except PolicyError as exc:
            log.error("policy rejected, keeping version %d:\n%s", self.policy.version, exc)
            return self._refuse(str(path), str(exc))
        return self.apply_policy(policy, str(path))

    def apply_policy(self, policy: Policy, source: str) -> PolicyLoad:
        """Make `policy` (from `source`: a file path, later a signed message) the one in
        force. A policy older than the last one loaded is refused, an equal one accepted."""
        saved = self.store.last_policy()
        if saved is not None and policy.version < saved[0]:
            why = f"{source}: version {policy.version} is older than the loaded version {saved[0]}"
            log.error("policy rejected: %s", why)
            return self._refuse(source, why)
        now = self.now()
        self.policy = policy
        self.store.save_policy(policy.version, source, policy_to_mapping(policy), now)
        self.events.record(Event(EventKind.POLICY_LOADED, now, {"version": policy.version}))
        log.info("policy version %d loaded from %s (age band %s)", policy.version, source, policy.age_band)
        self.poke()
        return PolicyLoad(True, f"version {policy.version} loaded")

    def _refuse(self, source: str, why: str) -> PolicyLoad:
        self.events.record(Event(EventKind.POLICY_REJECTED, self.now(), {"source": source, "why": why}))
        return PolicyLoad(False, why)

    # ------------------------------------------------------------------ facts from the OS layers

    def now(self) -> datetime:
        """The trusted instant (advances the watermark in memory)."""
        return self.clock.now()

    def _resynced(self, before: datetime, after: datetime) -> None:
        """NTP corrected the clock: close open usage at the old time, reopen at the new."""
        self.tracker, closed = self.tracker.checkpoint(before)
        self._commit(closed)
        self.tracker = self.tracker.restart_at(after)

    def set_counting(self, counting: bool) -> None:
        """The session layer: time counts now (active, not idle/locked/asleep) or not."""
        self.tracker, closed = self.tracker.set_counting(counting, self.now())
        self._commit(closed)
        self.poke()

    def app_started(self, app_id: str, categories: frozenset[str]) -> None:
        self.tracker = self.tracker.app_started(app_id, categories, self.now())
        self.poke()

    def app_stopped(self, app_id: str) -> None:
        self.tracker, closed = self.tracker.app_stopped(app_id, self.now())
        self._commit(closed)
        self.poke()

    def grant_minutes(self, minutes: int, source: GrantSource, reason: str = "") -> Grant:
        """Bonus minutes for today (local day in the policy's timezone), expiring at midnight."""
        now = self.now()
        tz = zone(self.policy.timezone)
        today = local_day(now, tz)
        grant = Grant(id=uuid.uuid4().hex, kind=GrantKind.BONUS, issued_at=now,
                      expires_at=day_span(today, tz)[1], source=source, minutes=minutes, day=today)
        self.add_grant(grant, reason)
        return grant

    def add_grant(self, grant: Grant, reason: str = "") -> None:
        self.store.add_grant(grant)
        self.events.record(Event(EventKind.GRANT_USED, grant.issued_at, {
            "kind": grant.kind.value, "minutes": grant.minutes, "source": grant.source.value,
            "expires": grant.expires_at.isoformat(), "reason": reason,
        }))
        self.poke()

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def poke(self) -> None:
        """Re-decide at once (a fact changed)."""
        self._wake.set()

    # ------------------------------------------------------------------ the tick

    def _commit(self, closed: list[Closed]) -> None:
        self.store.commit_tick(closed, self.clock.mark)
        self._committed = add_closed(self._committed, closed)

    def _refresh_committed(self, now: datetime) -> None:
        """Keep yesterday and today of committed usage in memory; reload on a new day."""
        tz = zone(self.policy.timezone)
        first = local_day(now, tz) - timedelta(days=1)
        if self._committed_from != first:
            self._committed = self.store.usage_since(day_span(first, tz)[0])
            self._committed_from = first

    def tick(self) -> Decision:
        now = self.now()
        last = self._last_checkpoint
        if last is None or not last <= now < last + CHECKPOINT:
            self.tracker, closed = self.tracker.checkpoint(now)
            self._commit(closed)
            self._last_checkpoint = now
        self._refresh_committed(now)
        usage = self.tracker.usage_at(self._committed, now)
        decision = decide(self.policy, now, usage, self.store.grants(now))
        previous, self.decision = self.decision, decision
        for subscriber in self.subscribers:
            subscriber(decision, previous)
        return decision

    def checkpoint(self) -> None:
        """Commit open intervals now (before sleep, on stop)."""
        now = self.now()
        self.tracker, closed = self.tracker.checkpoint(now)
        self._commit(closed)
        self._last_checkpoint = now

    def purge(self) -> None:
        """Retention: usage and expired grants older than the policy's retention period."""
        cutoff = self.now() - timedelta(days=self.policy.retention_days)
        self.store.purge_usage_before(cutoff)
        self.store.purge_grants_before(cutoff)

    async def run(self) -> None:
        self.events.record(Event(EventKind.AGENT_START, self.now(), {"policy_version": self.policy.version}))
        self.purge()
        self.tick()
        sdnotify.notify("READY=1", f"STATUS=enforcing policy version {self.policy.version}")
        log.info("enforcing policy version %d", self.policy.version)
        watchdog = sdnotify.watchdog_interval()
        loop = asyncio.get_running_loop()
        last_ping = loop.time()
        while not self.stopping:
            decision = self.decision
            wait = MAX_SLEEP
            if decision is not None and decision.next_change is not None:
                until = (decision.next_change.at - decision.at).total_seconds()
                wait = max(0.05, min(wait, until))
            self._wake.clear()
            sleeper = asyncio.ensure_future(self.clock.sleep(wait))
            waker = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, waker):
                task.cancel()
            if self.stopping:
                break
            self.tick()
            if watchdog is not None and loop.time() - last_ping >= watchdog:
                sdnotify.notify("WATCHDOG=1")
                last_ping = loop.time()
        self.checkpoint()
        sdnotify.notify("STOPPING=1")

    def stop(self) -> None:
        self.stopping = True
        self.poke()
