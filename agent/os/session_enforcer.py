"""Turns the Decision's lock state into logind calls, and keeps the child's sessions locked.

A screen locker runs as the child, and the child knows their own password, so one
LockSession is not enough: while a lock period lasts, any session seen unlocked (its
LockedHint went false, or logind sent Unlock) is locked again at once, and a periodic check
catches anything a lost signal missed. LockedHint is reported by the locker, which runs as
the child, so it can be faked: during a lock period LockSession is repeated every
`reassert_seconds` even for sessions that claim to be locked. If a session stays unlocked for
`terminate_after` despite that (no working locker), the session is ended: the configured
last resort. Warnings, the rest reminder and "time is up" go to a `Notifier` (the agent's
D-Bus service emits them as signals for the session helper). No policy logic here: every
fact comes from the Decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from dbus_fast.errors import DBusError

from agent.core import messages
from agent.core.decision import Decision, LockReason
from agent.os.logind import LogindWatcher

log = logging.getLogger("minormode.enforcer")

RECHECK_SECONDS = 1.0  # the backstop; signals normally re-lock within milliseconds
REASSERT_SECONDS = 15.0  # during a lock, LockSession again even if LockedHint says locked


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


class SessionEnforcer:
    """Subscribe `apply` to the agent's decisions and run `run()` on the loop."""

    def __init__(self, watcher: LogindWatcher, notifier: Notifier | None = None, *,
                 language: str = messages.DEFAULT_LANGUAGE, terminate_after_seconds: float = 0.0,
                 recheck_seconds: float = RECHECK_SECONDS,
                 reassert_seconds: float = REASSERT_SECONDS) -> None:
        self.watcher = watcher
        self.notifier = notifier
        self.language = language
        self.terminate_after_seconds = terminate_after_seconds
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
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()
        watcher.listeners.append(self._on_session_change)

    # ------------------------------------------------------------------ decisions in

    def apply(self, decision: Decision, previous: Decision | None = None) -> None:
        """Act on a new Decision (the daemon's subscriber signature)."""
        if decision.locked and not self.lock_wanted:
            self.lock_wanted, self.reason = True, decision.reason
            self._unlocked_since = None
            self._last_reassert = None
            log.info("lock: %s", decision.reason)
            if self.notifier is not None and decision.reason is not None:
                self.notifier.time_up(decision.reason.value,
                                      messages.lock_reason(decision.reason, self.language))
            self._spawn(self.enforce())
        elif not decision.locked and self.lock_wanted:
            log.info("lock period over")
            self.lock_wanted, self.reason = False, None
            self._unlocked_since = None
        elif decision.locked:
            self.reason = decision.reason
        self._notices(decision)

    def _notices(self, decision: Decision) -> None:
        due = None if decision.locked else decision.warning_due
        if due is not None and due != self._warned and self.notifier is not None:
            self.notifier.warning(due, messages.warning(due, self.language))
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
        """Lock every unlocked session of the child if a lock is wanted; end them if that
        has failed for too long."""
        if not self.lock_wanted or self._busy or self.watcher.bus is None:
            return  # not started yet: the backstop acts once it runs
        self._busy = True
        try:
            loop = asyncio.get_running_loop()
            unlocked = [s for s in self.watcher.sessions.values() if not s.locked]
            if not unlocked:
                self._unlocked_since = None
                await self._reassert(loop.time())
                return
            if self._unlocked_since is None:
                self._unlocked_since = loop.time()
            elif (self.terminate_after_seconds > 0
                  and loop.time() - self._unlocked_since >= self.terminate_after_seconds):
                log.warning("sessions stayed unlocked %.0f s during a lock: terminating",
                            loop.time() - self._unlocked_since)
                self.stats.terminations += 1
                await self.watcher.terminate_sessions()
                self._unlocked_since = None
                return
            for s in unlocked:
                await self.watcher.lock_session(s.id)
                self.stats.lock_calls += 1
            self._last_reassert = loop.time()
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
        """The backstop: re-check the lock every `recheck_seconds` until `stop()`."""
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.recheck_seconds)
            except TimeoutError:
                await self.enforce()

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
