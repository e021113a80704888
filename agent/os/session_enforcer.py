"""Turns the Decision's lock state into logind calls, and keeps the child's sessions locked.

A screen locker runs as the child, and the child knows their own password, so one
LockSession is not enough: while a lock period lasts, any session seen unlocked (its
LockedHint went false, or logind sent Unlock) is locked again at once, and a periodic
check catches anything a lost signal missed. LockedHint is reported by the locker, which
runs as the child, so it can be faked: the enforcer does not trust it alone. A session
counts as locked only when a `LockProof` verifies it
(`agent.os.lockproof.LockerProcesses`: the hint and a root-owned locker program running as
the child); during a lock period LockSession is repeated every `reassert_seconds` even for
sessions that claim to be locked, and a session not verifiably locked within
`lock_grace_seconds` (the policy's `enforcement.lock_grace_seconds`, default 60) is ended.
Without a proof nothing verifies, so every lock that lasts past the grace ends the
session: fail closed. Warnings, the rest reminder and "time is up" go to a `Notifier` (the
agent's D-Bus service emits them as signals for the session helper). No policy logic here:
every fact comes from the Decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from dbus_fast.errors import DBusError

from agent.core.decision import Decision, LockReason
from agent.locale import messages
from agent.os.logind import LogindWatcher, SessionState

log = logging.getLogger("minormode.enforcer")

RECHECK_SECONDS = 1.0  # the backstop; signals normally re-lock within milliseconds
REASSERT_SECONDS = 15.0  # during a lock, LockSession again even if LockedHint says locked
LOCK_GRACE_SECONDS = 60.0  # a session not verifiably locked this long into a lock is ended

# True when the agent has verified the session's screen is locked (not the hint alone).
LockProof = Callable[[SessionState], bool]


class Notifier(Protocol):
    """Where the child-facing notices go (the agent's D-Bus service implements it)."""

    def warning(self, minutes_left: int, message: str) -> None: ...

    def rest_reminder(self, message: str) -> None: ...

    def time_up(self, reason: str, message: str) -> None: ...


@dataclass
class EnforcerStats:
    lock_calls: int = 0
    terminations: int = 0
    reasserts: int = 0
    verified: int = 0  # checks during a lock that found every session verifiably locked


class SessionEnforcer:
    """Subscribe `apply` to the agent's decisions and run `run()` on the loop."""

    def __init__(self, watcher: LogindWatcher, notifier: Notifier | None = None, *,
                 language: str = messages.DEFAULT_LANGUAGE,
                 lock_grace_seconds: float = LOCK_GRACE_SECONDS,
                 lock_proof: LockProof | None = None,
                 recheck_seconds: float = RECHECK_SECONDS,
                 reassert_seconds: float = REASSERT_SECONDS) -> None:
        """`lock_proof`: how a lock is verified; None verifies nothing (every session in a
        lock is ended after the grace)."""
        if lock_grace_seconds <= 0:
            raise ValueError("lock_grace_seconds must be positive")
        messages.load_all()  # a missing or stale catalogue fails the start, not the first warning
        self.watcher = watcher
        self.notifier = notifier
        self.language = language
        self.lock_grace_seconds = lock_grace_seconds
        self.lock_proof: LockProof = lock_proof or (lambda _session: False)
        self.recheck_seconds = recheck_seconds
        self.reassert_seconds = reassert_seconds
        self._last_reassert: float | None = None
        self.lock_wanted = False
        self.reason: LockReason | None = None
        self.stats = EnforcerStats()
        self._warned: int | None = None
        self._reminded = False
        self._unlocked_since: float | None = None
        self._stopping = asyncio.Event()
        self._wanted = asyncio.Event()  # set while lock_wanted: wakes the backstop
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()
        watcher.listeners.append(self._on_session_change)

    # ------------------------------------------------------------------ decisions in

    def apply(self, decision: Decision, previous: Decision | None = None) -> None:
        """Act on a new Decision (the daemon's subscriber signature). Time up: the child is
        told (the helper's persistent time-up screen); the screen is locked only when the
        policy asks for it (`decision.lock_screen`), otherwise the session stays open in the
        limited mode, where the exec gate lets only always-allowed apps run."""
        time_up = decision.locked and (self.reason is None or decision.reason is not self.reason)
        if time_up and decision.reason is not None and self.notifier is not None:
            self.notifier.time_up(decision.reason.value, self._time_up_text(decision))
        self.reason = decision.reason if decision.locked else None
        if decision.lock_screen and not self.lock_wanted:
            self.lock_wanted = True
            self._wanted.set()
            self._unlocked_since = None
            self._last_reassert = None
            log.info("lock: %s", decision.reason)
            self._spawn(self.enforce())
        elif not decision.lock_screen and self.lock_wanted:
            log.info("lock period over")
            self.lock_wanted = False
            self._wanted.clear()
            self._unlocked_since = None
        elif decision.locked and not decision.lock_screen and time_up:
            log.info("limited mode: %s", decision.reason)
        self._notices(decision)

    def _time_up_text(self, decision: Decision) -> str:
        assert decision.reason is not None
        return messages.time_up(decision.reason, self.language, lock_screen=decision.lock_screen,
                                emergency_only=decision.apps.emergency_only,
                                back=messages.back_at(decision))

    def _notices(self, decision: Decision) -> None:
        due = None if decision.locked else decision.warning_due
        if due is not None and due != self._warned and self.notifier is not None:
            self.notifier.warning(due, messages.warning(due, self.language, messages.back_at(decision)))
        self._warned = due
        if decision.rest_reminder_due and not self._reminded and self.notifier is not None:
            minutes = decision.continuous_seconds // 60
            self.notifier.rest_reminder(
                messages.message(messages.Key.REST_REMINDER, self.language, minutes=minutes))
        self._reminded = decision.rest_reminder_due

    # ------------------------------------------------------------------ keeping it locked

    def _on_session_change(self, why: str) -> None:
        if self.lock_wanted and any(not s.locked for s in self.watcher.sessions.values()):
            self._spawn(self.enforce())

    async def enforce(self) -> None:
        """Lock every unlocked session of the child if a lock is wanted; end them if one
        is not verifiably locked within the grace."""
        if not self.lock_wanted or self._busy or self.watcher.bus is None:
            return  # not started yet: the backstop acts once it runs
        self._busy = True
        try:
            loop = asyncio.get_running_loop()
            sessions = list(self.watcher.sessions.values())
            unverified = [s for s in sessions if not (s.locked and self.lock_proof(s))]
            if not unverified:
                self._unlocked_since = None
                self.stats.verified += 1
                await self._reassert(loop.time())
                return
            if self._unlocked_since is None:
                self._unlocked_since = loop.time()
            elif loop.time() - self._unlocked_since >= self.lock_grace_seconds:
                log.warning("session(s) %s not verifiably locked %.0f s into a lock: ending them",
                            ", ".join(s.id for s in unverified), loop.time() - self._unlocked_since)
                self.stats.terminations += 1
                await self.watcher.terminate_sessions()
                self._unlocked_since = None
                return
            unlocked = [s for s in unverified if not s.locked]
            for s in unlocked:
                await self.watcher.lock_session(s.id)
                self.stats.lock_calls += 1
            if unlocked:
                self._last_reassert = loop.time()
            else:  # hints say locked, nothing verifies it: ask again now and then
                await self._reassert(loop.time())
        except DBusError as exc:
            log.error("locking failed (will retry): %s", exc)
        finally:
            self._busy = False

    async def _reassert(self, now: float) -> None:
        """Lock sessions that claim to be locked too, now and then (the claim may be fake)."""
        if self._last_reassert is not None and now - self._last_reassert < self.reassert_seconds:
            return
        self._last_reassert = now
        for s in list(self.watcher.sessions.values()):
            await self.watcher.lock_session(s.id)
            self.stats.lock_calls += 1
            self.stats.reasserts += 1

    async def run(self) -> None:
        """The backstop: re-check the lock every `recheck_seconds` while a lock is wanted,
        until `stop()`. With no lock wanted there is nothing to check (`enforce` would
        return at once): it sleeps until one is (`on_decision` sets `_wanted`)."""
        while not self._stopping.is_set():
            if not self.lock_wanted:
                await self._until(self._wanted, None)
            elif await self._until(self._stopping, self.recheck_seconds):
                continue
            await self.enforce()

    async def _until(self, event: asyncio.Event, timeout: float | None) -> bool:
        """Wait for `event` (or `stop()`) at most `timeout` seconds; True if it was set."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return event.is_set() or self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (a synchronous test): the backstop will act
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
