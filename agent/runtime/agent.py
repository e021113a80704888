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
import sqlite3
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from agent.api.port import PolicyLoad
from agent.core.activity import ActivityTracker, Closed, add_closed
from agent.core.calendar import day_span, local_day, zone
from agent.core.decide import decide
from agent.core.decision import Decision, LockReason, forced_lock
from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.parse import (
    PolicyError,
    default_policy,
    load_policy_file,
    policy_from_mapping,
    policy_to_mapping,
)
from agent.core.policy import AgeBand, Policy, TimeUpMode
from agent.core.usage import Usage
from agent.os import sdnotify
from agent.runtime.clock import TrustedClock
from agent.runtime.decision_events import DecisionRecorder
from agent.runtime.notify import describe
from agent.store.events import Event, EventKind, EventSink, JSONScalar
from agent.store.recovery import StorageHealth, is_storage_failure, set_aside_log
from agent.store.state import StateStore

log = logging.getLogger("minormode.agent")

CHECKPOINT = timedelta(seconds=10)  # usage is committed at least this often
MAX_SLEEP = 5.0  # seconds of clock time between ticks at most
STATE = "state"  # this store's name in StorageHealth
PURGE_EVERY = timedelta(hours=1)  # retention runs at start and then this often (trusted time)

Subscriber = Callable[[Decision, Decision | None], None]


class Agent:
    """State and decisions; drive it with `tick()` (tests) or `run()` (the daemon).

    Implements `agent.api.port.AgentPort` for the D-Bus controller.
    """

    def __init__(self, store: StateStore, clock: TrustedClock, policy_path: Path | None,
                 fallback_band: AgeBand = AgeBand.AGE_8_12, events: EventSink | None = None,
                 storage: StorageHealth | None = None) -> None:
        """`storage`: which stores cannot be written now (shared with the journal's queue);
        while any is failing the session is locked and usage is kept in memory."""
        self.store, self.clock, self.policy_path = store, clock, policy_path
        self.storage = storage or StorageHealth()
        self._unsaved: list[Closed] = []  # closed usage the state store could not take yet
        self._session_counting = False  # what the session layer last said
        self.events: EventSink = events or store  # the encrypted journal in the daemon
        self.fallback_band = fallback_band
        self.tracker = ActivityTracker()
        self.policy: Policy = self._last_good_policy()
        self.decision: Decision | None = None
        self.subscribers: list[Subscriber] = [DecisionRecorder(self.events)]
        self._committed = Usage()
        self._committed_from: date | None = None
        self._last_checkpoint: datetime | None = None
        self._last_purge: datetime | None = None
        # Other stores the same retention applies to (the daemon adds the daily chart counts);
        # each is called with the cutoff instant.
        self.retention_hooks: list[Callable[[datetime], object]] = []
        self._wake = asyncio.Event()
        self.stopping = False
        self.paired: Callable[[], bool] = lambda: False  # the trust layer says once paired
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
        if self.paired():
            return self._refuse_unsigned(str(path))
        try:
            policy = load_policy_file(path)
        except PolicyError as exc:
            log.error("policy rejected, keeping version %d:\n%s", self.policy.version, exc,
                      extra={"POLICY_VERSION": self.policy.version, "POLICY_SOURCE": str(path)})
            return self._refuse(str(path), str(exc))
        return self.apply_policy(policy, str(path))

    def apply_policy(self, policy: Policy, source: str, *, signed: bool = False) -> PolicyLoad:
        """Make `policy` (from `source`: a file path, or a guardian's signed message) the one
        in force. A local policy (a file, root's LoadPolicy) is refused once the device is
        paired, and when older than the last one loaded (an equal one is accepted). A signed
        policy has passed the trust layer's checks (signature, strictly newer version of
        the signed stream), which replace the file rule."""
        if not signed and self.paired():
            return self._refuse_unsigned(source)
        saved = self.store.last_policy()
        if not signed and saved is not None and policy.version < saved[0]:
            why = f"{source}: version {policy.version} is older than the loaded version {saved[0]}"
            log.error("policy rejected: %s", why)
            return self._refuse(source, why)
        now = self.now()
        self.policy = policy
        self.store.save_policy(policy.version, source, policy_to_mapping(policy), now)
        self.events.record(Event(EventKind.POLICY_LOADED, now, {"version": policy.version, "source": source}))
        log.info("policy version %d loaded from %s (age band %s)", policy.version, source, policy.age_band,
                 extra={"POLICY_VERSION": policy.version, "POLICY_SOURCE": source})
        self.poke()
        return PolicyLoad(True, f"version {policy.version} loaded")

    def reset_to_factory(self, why: str) -> None:
        """Unpairing: back to the factory default policy (the policy file the image ships,
        or the age band's defaults), never to "unlimited"."""
        self.store.forget_policy()
        policy = default_policy(self.fallback_band)
        source = f"age band {self.fallback_band.value} defaults"
        if self.policy_path is not None and self.policy_path.exists():
            try:
                policy, source = load_policy_file(self.policy_path), str(self.policy_path)
            except PolicyError as exc:
                log.error("factory policy %s unreadable, using the band defaults: %s", self.policy_path, exc)
        now = self.now()
        self.policy = policy
        self.store.save_policy(policy.version, source, policy_to_mapping(policy), now)
        self.events.record(Event(EventKind.POLICY_LOADED, now, {
            "version": policy.version, "source": f"factory default: {source} ({why})"}))
        self.poke()

    def _refuse_unsigned(self, source: str) -> PolicyLoad:
        why = f"{source}: this device is paired, so only policies its guardians signed apply"
        log.error("policy rejected: %s", why)
        self.events.record(Event(EventKind.BAD_SIGNATURE, self.now(), {
            "what": "unsigned policy refused", "source": source, "why": why}))
        return PolicyLoad(False, why)

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
        self._session_counting = counting
        locked = self.decision is not None and self.decision.locked
        self.tracker, closed = self.tracker.set_counting(counting and not locked, self.now())
        self._commit(closed)
        self.poke()

    def _count_while(self, decision: Decision, now: datetime) -> None:
        """In the limited mode the session stays open but the device time is over: only
        always-allowed apps run, which never consume the budget, so nothing counts."""
        counting = self._session_counting and not decision.locked
        if counting != (self.tracker.active_since is not None):
            self.tracker, closed = self.tracker.set_counting(counting, now)
            self._commit(closed)

    def app_started(self, app_id: str, categories: frozenset[str]) -> None:
        self.tracker = self.tracker.app_started(app_id, categories, self.now())
        self.poke()

    def app_stopped(self, app_id: str) -> None:
        self.tracker, closed = self.tracker.app_stopped(app_id, self.now())
        self._commit(closed)
        self.poke()

    def grant_minutes(self, minutes: int, source: GrantSource, reason: str = "",
                      grant_id: str | None = None) -> Grant:
        """Bonus minutes for today (local day in the policy's timezone), expiring at midnight.
        `grant_id` makes it idempotent (a guardian's message id: delivered twice, granted once)."""
        now = self.now()
        tz = zone(self.policy.timezone)
        today = local_day(now, tz)
        grant = Grant(id=grant_id or uuid.uuid4().hex, kind=GrantKind.BONUS, issued_at=now,
                      expires_at=day_span(today, tz)[1], source=source, minutes=minutes, day=today)
        self.add_grant(grant, reason)
        return grant

    def add_grant(self, grant: Grant, reason: str = "") -> None:
        """Store and record a grant; one already stored (same id: a guardian's message
        delivered again) changes nothing and is not recorded twice."""
        if not self.store.add_grant_once(grant):
            return
        self.events.record(Event(EventKind.GRANT_USED, grant.issued_at, {
            "kind": grant.kind.value, "minutes": grant.minutes, "source": grant.source.value,
            "expires": grant.expires_at.isoformat(), "reason": reason,
        }))
        self.poke()

    def end_grants(self, kinds: frozenset[GrantKind]) -> int:
        """End every grant of these kinds in force now (a guardian's lock ends an unlock)."""
        ended = self.store.end_grants(kinds, self.now())
        self.poke()
        return ended

    def delete_child_data(self) -> int:
        """A guardian's deletion: usage, grants and pending requests in the state store."""
        self.checkpoint()
        removed = self.store.delete_child_data()
        self._committed, self._committed_from = Usage(), None
        self.poke()
        return removed

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def poke(self) -> None:
        """Re-decide at once (a fact changed)."""
        self._wake.set()

    # ------------------------------------------------------------------ the tick

    def _commit(self, closed: list[Closed]) -> None:
        """Usage to the store; on a full disk it stays in memory (counted all the same) and
        goes with the next commit that succeeds."""
        self._committed = add_closed(self._committed, closed)
        pending = self._unsaved + closed
        try:
            self.store.commit_tick(pending, self.clock.mark)
        except (sqlite3.Error, OSError) as exc:
            if not is_storage_failure(exc):
                raise
            self._unsaved = pending
            self.storage.failed(STATE, exc)
            return
        self._unsaved = []
        self.storage.recovered(STATE)

    def _refresh_committed(self, now: datetime) -> None:
        """Keep yesterday and today of committed usage in memory; reload on a new day."""
        tz = zone(self.policy.timezone)
        first = local_day(now, tz) - timedelta(days=1)
        if self._committed_from != first:
            self._committed = add_closed(self.store.usage_since(day_span(first, tz)[0]), self._unsaved)
            self._committed_from = first

    def tick(self) -> Decision:
        now = self.now()
        last = self._last_checkpoint
        if last is None or not last <= now < last + CHECKPOINT:
            self.tracker, closed = self.tracker.checkpoint(now)
            self._commit(closed)
            self._last_checkpoint = now
        if self._last_purge is None or not self._last_purge <= now < self._last_purge + PURGE_EVERY:
            self.purge(now)
        self._refresh_committed(now)
        usage = self.tracker.usage_at(self._committed, now)
        decision = decide(self.policy, now, usage, self.store.grants(now))
        if not self.storage.ok:  # enforcing from memory: locked until the disk recovers
            decision = forced_lock(decision, LockReason.STORAGE_FAILURE,
                                   screen=self.policy.enforcement.time_up is TimeUpMode.LOCK)
        self._count_while(decision, now)
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

    def purge(self, now: datetime | None = None) -> None:
        """Retention: usage and expired grants older than the policy's retention period (and
        whatever `retention_hooks` hold). `tick` calls it at start and every `PURGE_EVERY`,
        so a device that runs for weeks keeps no more than the period (Prov. 12)."""
        now = now or self.now()
        cutoff = now - timedelta(days=self.policy.retention_days)
        self._last_purge = now
        try:
            self.store.purge_usage_before(cutoff)
            self.store.purge_grants_before(cutoff)
            for hook in self.retention_hooks:
                hook(cutoff)
        except (sqlite3.Error, OSError) as exc:
            if not is_storage_failure(exc):
                raise
            log.error("retention postponed: %s", exc)  # the next hour's purge catches up

    def start_facts(self) -> dict[str, JSONScalar | list[JSONScalar]]:
        """What the `agent_start` event says: the policy in force and where it came from,
        and every damaged state file set aside at start (`agent.store.recovery`)."""
        saved = self.store.last_policy()
        facts: dict[str, JSONScalar | list[JSONScalar]] = {
            "policy_version": self.policy.version,
            "policy_source": saved[1] if saved is not None else f"band {self.fallback_band.value} defaults",
        }
        recovered = set_aside_log()
        if recovered:
            facts["set_aside"] = [f"{r.path.name} -> {r.moved_to.name}: {r.why}"[:300] for r in recovered]
        return facts

    async def run(self) -> None:
        self.events.record(Event(EventKind.AGENT_START, self.now(), self.start_facts()))
        first = self.tick()
        # the first decision's line, as the notifier keeps it after (a bare "enforcing policy
        # version N" here replaced the line the tick had just sent, for up to 30 s)
        sdnotify.notify("READY=1", f"STATUS={describe(first)}")
        log.info("enforcing policy version %d", self.policy.version,
                 extra={"POLICY_VERSION": self.policy.version})
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
