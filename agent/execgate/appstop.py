"""Stop the child's apps that may no longer run: SIGTERM, then SIGKILL after a grace period.

Which apps to stop is the Decision's answer (`AppAccess.verdict`): an app whose own limit
is spent, one blocked by a policy change, and, when the device budget ends, everything
but always-allowed apps. Processes are held by pidfd from the first signal to the last,
so a recycled PID is never signalled. (On cgroup v2 freezing the app's scope is an
alternative; these test machines run cgroup v1, so signals are what is tested.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.core.decision import AppAccess, AppVerdict
from agent.execgate.catalogue import AppInfo
from agent.locale import messages
from agent.locale.messages import DEFAULT_LANGUAGE
from agent.store.events import Event, EventKind, EventSink


def apps_to_stop(
    access: AppAccess, running: Collection[str], apps: Mapping[str, AppInfo]
) -> dict[str, AppVerdict]:
    """The running apps the Decision no longer allows (apps the session needs never)."""
    out: dict[str, AppVerdict] = {}
    for app_id in sorted(running):
        info = apps.get(app_id)
        if info is not None and info.needed_by_session:
            continue
        verdict = access.verdict(app_id, info.categories if info else frozenset())
        if not verdict.allowed:
            out[app_id] = verdict
    return out


@dataclass(frozen=True)
class StopResult:
    terminated: frozenset[int]  # ended after SIGTERM (or were already gone)
    killed: frozenset[int]  # needed SIGKILL
    survivors: frozenset[int]  # still there after SIGKILL's wait (unkillable, D state)


async def _wait_exited(pidfds: Mapping[int, int], timeout: float) -> set[int]:
    """Wait until the processes exit or `timeout`; returns the pids still running."""
    loop = asyncio.get_running_loop()
    pending = dict(pidfds)
    if not pending:
        return set()
    done = asyncio.Event()

    def exited(pid: int) -> None:
        loop.remove_reader(pending.pop(pid))
        if not pending:
            done.set()

    for pid, fd in list(pending.items()):
        loop.add_reader(fd, exited, pid)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        for fd in pending.values():
            loop.remove_reader(fd)
    return set(pending)


def _signal(fd: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(fd, signum)


async def stop_processes(pids: Collection[int], grace: float, kill_wait: float = 5.0) -> StopResult:
    """SIGTERM every pid, SIGKILL those still running after `grace` seconds."""
    pidfds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            pidfds[pid] = os.pidfd_open(pid)
    try:
        for fd in pidfds.values():
            _signal(fd, signal.SIGTERM)
        stubborn = await _wait_exited(pidfds, grace)
        for pid in stubborn:
            _signal(pidfds[pid], signal.SIGKILL)
        survivors = await _wait_exited({p: pidfds[p] for p in stubborn}, kill_wait)
    finally:
        for fd in pidfds.values():
            os.close(fd)
    all_pids = frozenset(pids)
    return StopResult(all_pids - stubborn, frozenset(stubborn - survivors), frozenset(survivors))


def stop_message(app_name: str, verdict: AppVerdict, language: str) -> str:
    """What the child is told, once per app (through the session helper)."""
    return messages.app_stopped(app_name, verdict.reason.value if verdict.reason else None, language)


@dataclass
class AppStopper:
    """Stops apps the Decision no longer allows, records APP_STOPPED, tells the child once.

    `notify(app_id, text)` must not block (the session helper's queue)."""

    apps: Mapping[str, AppInfo]
    sink: EventSink
    notify: Callable[[str, str], None]
    grace: float = 5.0
    language: str = DEFAULT_LANGUAGE  # the child's, for what `notify` says

    async def enforce(
        self, access: AppAccess, running: Mapping[str, frozenset[int]], now: datetime
    ) -> dict[str, StopResult]:
        results: dict[str, StopResult] = {}
        targets = apps_to_stop(access, list(running), self.apps)
        stops = [stop_processes(running[a], self.grace) for a in targets]
        for app_id, result in zip(targets, await asyncio.gather(*stops), strict=True):
            verdict = targets[app_id]
            results[app_id] = result
            info = self.apps.get(app_id)
            self.notify(app_id, stop_message(info.name if info else app_id, verdict, self.language))
            self.sink.record(
                Event(
                    EventKind.APP_STOPPED,
                    now,
                    {
                        "app_id": app_id,
                        "reason": verdict.reason.value if verdict.reason else None,
                        "processes": len(running[app_id]),
                        "killed": len(result.killed),
                        "survivors": len(result.survivors),
                    },
                )
            )
        return results
