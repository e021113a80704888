"""The daemon's one handle on app enforcement: catalogue, exec gate, running apps, stops.

Wiring (agent/daemon.py), on the asyncio loop:

    guard = AppGuard(AppGuardConfig(...), agent.store, notify, on_outage, agent.now)
    await guard.start(agent.decision.apps)    # scans apps, starts the gate process
    agent.subscribe(guard.on_decision)         # new verdicts at once, stops spent apps
    tracking = asyncio.ensure_future(guard.run_tracking(agent.app_started, agent.app_stopped))
    ... on shutdown: tracking.cancel(); await guard.stop()

Everything blocking (scanning, hashing, starting the gate, writing to its pipe) runs in
a worker thread; callbacks from the gate's supervisor thread are handed to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from agent.core.decision import AppAccess, Decision
from agent.core.usage import Interval
from agent.execgate.appstop import AppStopper, StopResult
from agent.execgate.apptracker import AppChanges, AppTracker, Attributor, running_apps
from agent.execgate.base import base_problems
from agent.execgate.catalogue import DEFAULT_DIRS, AppInfo, scan
from agent.execgate.events import blocked_event, blocked_message, outage_event
from agent.execgate.loop import Blocked
from agent.execgate.supervisor import GateOutage, GateSupervisor
from agent.execgate.table import GateConfig, GateTable, build_table, loader_paths
from agent.locale.messages import DEFAULT_LANGUAGE
from agent.store.events import EventSink

log = logging.getLogger(__name__)


class BaseError(ValueError):
    """The configured OS base (or an app the session needs) holds a shell, launcher,
    interpreter, namespace or mount tool, loader, or privileged program."""


@dataclass(frozen=True)
class AppGuardConfig:
    # Filesystems holding executables the child can reach; on the device ("/",) plus any
    # separate exec-capable one. No default, so nothing marks "/" by accident (tests!).
    marks: tuple[str, ...]
    child_uids: frozenset[int] = frozenset({1000})
    desktop_dirs: tuple[str, ...] = DEFAULT_DIRS
    session_apps: frozenset[str] = frozenset()  # app IDs the session needs (never stopped)
    gate: GateConfig = field(default_factory=GateConfig)
    grace_seconds: float = 5.0  # between SIGTERM and SIGKILL
    python: str | None = None  # interpreter for the gate process (default: this one)


class AppGuard:
    def __init__(
        self,
        config: AppGuardConfig,
        sink: EventSink,
        notify: Callable[[str, str], None],
        on_outage: Callable[[bool], None],
        clock: Callable[[], datetime],
    ) -> None:
        """`notify(app_id, text)` tells the child (session helper); `on_outage(True)`
        locks the session until `on_outage(False)`; `clock()` is the trusted time."""
        self.config = config
        self.sink = sink
        self.notify = notify
        self.language = DEFAULT_LANGUAGE  # the child's, from each Decision
        self.on_outage = on_outage
        self.clock = clock
        self.apps: dict[str, AppInfo] = {}
        self.scan_errors: list[str] = []
        self._access: AppAccess | None = None
        self._generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._supervisor: GateSupervisor | None = None
        self._attributor: Attributor | None = None
        self._tracker: AppTracker | None = None
        self._applying = asyncio.Lock()
        self._tasks: set[asyncio.Task[dict[str, StopResult]]] = set()
        self._look: asyncio.Event | None = None  # set: the tracker reads /proc soon

    # -- lifecycle

    async def start(self, access: AppAccess) -> None:
        """Scan the apps and start the gate; BaseError if the OS base holds a program the
        child must not run by itself (agent.execgate.base): nothing is started then."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._scan)
        session = (exe for app in self.apps.values() if app.needed_by_session for exe in app.executables)
        problems = base_problems((*self.config.gate.base_paths, *session))
        if problems:
            raise BaseError("the exec gate's OS base holds programs the child must not run: "
                            + "; ".join(problems))
        self._access = access
        table = await asyncio.to_thread(self._table, access)
        kwargs = {"python": self.config.python} if self.config.python else {}
        self._supervisor = GateSupervisor(
            self.config.marks,
            table,
            self._from_gate_blocked,
            self._from_gate_outage,
            on_activity=self._from_gate_activity,
            **kwargs,  # type: ignore[arg-type]
        )
        await asyncio.to_thread(self._supervisor.start)

    async def stop(self) -> None:
        if self._supervisor is not None:
            await asyncio.to_thread(self._supervisor.stop)
            self._supervisor = None

    async def rescan(self) -> None:
        """The installed apps changed (package or Flatpak install): rebuild everything."""
        await asyncio.to_thread(self._scan)
        if self._access is not None:
            await self._push(self._access)

    def allowed_domains(self, access: AppAccess) -> frozenset[str]:
        """The names the apps that may run under `access` declare they need
        (`X-Minormode-Domains`): the network filter resolves them in every mode."""
        return frozenset(d for app in self.apps.values() if access.verdict(app.app_id, app.categories).allowed
                         for d in app.domains)

    # -- decisions

    async def apply(self, access: AppAccess) -> dict[str, StopResult]:
        """Enforce a new Decision's app access: new verdicts at once, then stop apps
        that may no longer run (their own limit spent, blocked, or the budget ended)."""
        async with self._applying:
            if access != self._access:
                self._access = access
                await self._push(access)
            running = await asyncio.to_thread(self._running)
            stopper = AppStopper(self.apps, self.sink, self.notify, self.config.grace_seconds, self.language)
            return await stopper.enforce(access, running, self.clock())

    def on_decision(self, decision: Decision, previous: Decision | None) -> None:
        """An `Agent` subscriber: apply the app access when it changed (not every tick)."""
        self.language = decision.language
        if previous is not None and decision.apps == previous.apps:
            return
        task = asyncio.ensure_future(self.apply(decision.apps))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_tracking(
        self,
        started: Callable[[str, frozenset[str]], None],
        stopped: Callable[[str], None],
        settle: float = 0.3,
        safety: float = 60.0,
    ) -> None:
        """Report apps starting and stopping (Agent.app_started / app_stopped) until
        cancelled. The running processes are read `settle` seconds after the gate saw
        execs (so they are complete: /proc shows the new program), when a tracked app's
        process exits (a pidfd each), and every `safety` seconds. Before, /proc was read
        every 2 s: the largest wake-up of an idle tablet with the gate on. An app is seen
        within about `settle` seconds of its exec or its end."""
        look = self._look = asyncio.Event()
        exits: dict[int, int] = {}  # pid -> pidfd of the tracked apps' processes
        try:
            while True:
                look.clear()
                changes = await self.poll()
                for app_id in sorted(changes.stopped):
                    stopped(app_id)
                for app_id in sorted(changes.started):
                    info = self.apps.get(app_id)
                    started(app_id, info.categories if info else frozenset())
                self._watch_exits(exits)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(look.wait(), safety)
                await asyncio.sleep(settle)
        finally:
            self._look = None
            for fd in exits.values():
                self._forget_exit(fd)

    def _watch_exits(self, exits: dict[int, int]) -> None:
        """A pidfd on the loop for each process of a running app (readable when it ends)."""
        assert self._loop is not None and self._tracker is not None and self._look is not None
        pids = {pid for group in self._tracker.running.values() for pid in group}
        for pid in [p for p in exits if p not in pids]:
            self._forget_exit(exits.pop(pid))
        for pid in pids - exits.keys():
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:  # already gone: look again
                self._look.set()
                continue
            except OSError as exc:  # out of fds: its end is seen by the safety look
                log.warning("app tracking: no pidfd for %d (%s)", pid, exc)
                continue
            exits[pid] = fd
            self._loop.add_reader(fd, self._exited, exits, pid)

    def _exited(self, exits: dict[int, int], pid: int) -> None:
        fd = exits.pop(pid, None)
        if fd is not None:
            self._forget_exit(fd)
        if self._look is not None:
            self._look.set()

    def _forget_exit(self, fd: int) -> None:
        assert self._loop is not None
        self._loop.remove_reader(fd)
        os.close(fd)

    async def poll(self) -> AppChanges:
        """Which apps started or stopped since the last poll (for the activity tracker)."""
        assert self._tracker is not None, "start() first"
        return await asyncio.to_thread(self._tracker.poll, self.clock())

    def intervals_at(self, now: datetime) -> dict[str, tuple[Interval, ...]]:
        assert self._tracker is not None, "start() first"
        return self._tracker.intervals_at(now)

    # -- internals

    def _scan(self) -> None:
        result = scan(self.config.desktop_dirs, session_apps=self.config.session_apps)
        self.apps, self.scan_errors = result.apps, result.errors
        self._attributor = Attributor(self.apps)
        if self._tracker is None:
            self._tracker = AppTracker(self._running)

    def _running(self) -> dict[str, frozenset[int]]:
        assert self._attributor is not None
        return running_apps(self._attributor, self.config.child_uids)

    def _table(self, access: AppAccess) -> GateTable:
        self._generation += 1
        gate = self.config.gate
        # The dynamic loaders: every dynamic program's second step, never run by the child alone.
        gate = replace(gate, loaders=tuple(dict.fromkeys((*gate.loaders, *loader_paths()))))
        return build_table(self.apps, access, gate, self._generation)

    async def _push(self, access: AppAccess) -> None:
        table = await asyncio.to_thread(self._table, access)
        if self._supervisor is not None:
            await asyncio.to_thread(self._supervisor.update, table)

    def _from_gate_blocked(self, blocked: Blocked) -> None:  # supervisor thread
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._blocked, blocked)

    def _from_gate_activity(self) -> None:  # supervisor thread
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._activity)

    def _activity(self) -> None:
        if self._look is not None:
            self._look.set()

    def _from_gate_outage(self, outage: GateOutage) -> None:  # supervisor thread
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._outage, outage)

    def _blocked(self, blocked: Blocked) -> None:
        self.sink.record(blocked_event(blocked, self.clock()))
        self.notify(blocked.app_id or blocked.path, blocked_message(blocked, self.apps, self.language))

    def _outage(self, outage: GateOutage) -> None:
        self.on_outage(outage.started)
        self.sink.record(outage_event(outage, self.clock()))
