"""The agent daemon: the only module that knows every part, wired on one asyncio loop.

Each tick reads the clock, advances the trusted clock, commits usage in small pieces,
computes the Decision and hands it to every enforcement layer that subscribed. Layers
report facts back (the session counts or not, an app started or stopped) through the
methods of `Agent`; none of them holds policy logic.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agent.api.callers import ExeMapIdentifier
from agent.api.dev_session import DevSession
from agent.api.payments import PaymentsService
from agent.api.session_layer import SessionConfig, SessionLayer
from agent.core.activity import ActivityTracker, Closed, add_closed
from agent.core.calendar import day_span, local_day, zone
from agent.core.clock import JUMP_TOLERANCE, ClockEventKind, Watermark, advance, resync
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
from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.catalogue import apps_by_executable
from agent.execgate.table import GateConfig
from agent.filter.server import FilterSettings
from agent.filter.service import NetworkFilter
from agent.os import sdnotify
from agent.os.clocksource import ClockSource, SimulatedClock, SystemClock
from agent.store.events import Event, EventKind, EventSink
from agent.store.journal import Journal
from agent.store.layout import StoreLayout
from agent.store.ledger import Ledger
from agent.store.maintenance import StoreMaintenance
from agent.store.state import StateStore

log = logging.getLogger("minormode.agent")

CHECKPOINT = timedelta(seconds=10)  # usage is committed at least this often
MAX_SLEEP = 5.0  # seconds of clock time between ticks at most

Subscriber = Callable[[Decision, Decision | None], None]

_CLOCK_EVENT_KIND = {
    ClockEventKind.WALL_JUMP: EventKind.CLOCK_JUMP,
    ClockEventKind.BEHIND_WATERMARK: EventKind.CLOCK_JUMP,
    ClockEventKind.BOOTTIME_BACKWARDS: EventKind.CLOCK_JUMP,
    ClockEventKind.TIMEZONE_CHANGE: EventKind.TIMEZONE_CHANGE,
    ClockEventKind.RESYNC: EventKind.CLOCK_JUMP,
}


@dataclass(frozen=True)
class PolicyLoad:
    ok: bool
    message: str


class Agent:
    """State and wiring; drive it with `tick()` (tests) or `run()` (the daemon)."""

    def __init__(self, store: StateStore, clock: ClockSource, policy_path: Path | None,
                 fallback_band: AgeBand = AgeBand.AGE_8_12, events: EventSink | None = None) -> None:
        self.store, self.clock, self.policy_path = store, clock, policy_path
        self.events: EventSink = events or store  # the encrypted journal in the daemon
        self.fallback_band = fallback_band
        self.tracker = ActivityTracker()
        self.mark: Watermark | None = store.load_watermark()
        self.policy: Policy = self._last_good_policy()
        self.decision: Decision | None = None
        self.subscribers: list[Subscriber] = []
        self._committed = Usage()
        self._committed_from: date | None = None
        self._last_checkpoint: datetime | None = None
        self._wake = asyncio.Event()
        self.stopping = False

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
        now = self.now()
        try:
            policy = load_policy_file(path)
        except PolicyError as exc:
            log.error("policy rejected, keeping version %d:\n%s", self.policy.version, exc)
            self.events.record(Event(EventKind.POLICY_REJECTED, now, {"source": str(path), "why": str(exc)}))
            return PolicyLoad(False, str(exc))
        saved = self.store.last_policy()
        if saved is not None and policy.version < saved[0]:
            why = f"{path}: version {policy.version} is older than the loaded version {saved[0]}"
            log.error("policy rejected: %s", why)
            self.events.record(Event(EventKind.POLICY_REJECTED, now, {"source": str(path), "why": why}))
            return PolicyLoad(False, why)
        self.policy = policy
        self.store.save_policy(policy.version, str(path), policy_to_mapping(policy), now)
        self.events.record(Event(EventKind.POLICY_LOADED, now, {"version": policy.version}))
        log.info("policy version %d loaded from %s (age band %s)", policy.version, path, policy.age_band)
        self.poke()
        return PolicyLoad(True, f"version {policy.version} loaded")

    # ------------------------------------------------------------------ facts from the OS layers

    def now(self) -> datetime:
        """The trusted instant (advances the watermark in memory)."""
        reading = self.clock.read()
        self.mark, events = advance(self.mark, reading)
        verified = self.clock.synchronized_wall()
        if verified is not None:
            self.tracker, closed = self.tracker.checkpoint(self.mark.trusted)
            self._commit(closed)
            self.mark, resynced = resync(self.mark, reading, verified)
            self.tracker = self.tracker.restart_at(self.mark.trusted)
            if abs(resynced.delta_seconds) > JUMP_TOLERANCE.total_seconds():
                log.info("clock: NTP moved trusted time by %+.1f s", resynced.delta_seconds)
                events.append(resynced)
        for e in events:
            kind = _CLOCK_EVENT_KIND.get(e.kind)
            if kind is not None:
                log.warning("clock: %s (%+.1f s) %s", e.kind.value, e.delta_seconds, e.detail)
                self.events.record(Event(kind, e.at, {"what": e.kind.value, "delta_seconds": e.delta_seconds,
                                                     "detail": e.detail}))
        return self.mark.trusted

    @property
    def trusted_now(self) -> datetime:
        """The last trusted instant, without reading the clock (for components' timestamps)."""
        return self.mark.trusted if self.mark is not None else self.now()

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
        self.store.commit_tick(closed, self.mark)
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


# ---------------------------------------------------------------------- development mode


class DevChild:
    """The development mode's simulated child, on the fake logind of a private bus: the
    agent locks the session through logind; whenever the agent allows use again the child
    unlocks at the screen locker and keeps using the device. Logs what the child sees."""

    def __init__(self, dev: DevSession) -> None:
        self.dev = dev
        self._pending: set[asyncio.Future[None]] = set()

    def __call__(self, decision: Decision, previous: Decision | None) -> None:
        tz = zone(decision.timezone)
        local = decision.at.astimezone(tz).strftime("%a %H:%M")
        if previous is None or (previous.locked, previous.reasons) != (decision.locked, decision.reasons):
            if decision.locked:
                until = decision.unlock_at.astimezone(tz).strftime("%a %H:%M") if decision.unlock_at else "?"
                log.info("%s  LOCKED (%s) until %s; used %d min today", local,
                         ", ".join(r.value for r in decision.reasons), until, decision.used_seconds // 60)
            else:
                left = decision.remaining_seconds
                log.info("%s  unlocked; %s", local,
                         "no lock ahead" if left is None else f"{left // 60} min until the lock")
                unlock = asyncio.ensure_future(self.dev.unlock_as_child())
                self._pending.add(unlock)
                unlock.add_done_callback(self._pending.discard)
        if decision.warning_due and (previous is None or previous.warning_due != decision.warning_due):
            log.info("%s  warning: %d min left", local, decision.warning_due)
        if decision.rest_reminder_due and (previous is None or not previous.rest_reminder_due):
            log.info("%s  rest reminder: %d min of continuous use", local, decision.continuous_seconds // 60)


# ---------------------------------------------------------------------- entry point


class Services:
    """Every enforcement layer around the Agent, started in order and stopped in reverse.

    The session layer comes first: the exec gate reports blocks to the child through it and
    locks the session through it while the gate is down; the payments broker identifies
    callers from the exec gate's app catalogue.
    """

    def __init__(self, agent: Agent, args: argparse.Namespace, journal: Journal, ledger: Ledger,
                 clock: Callable[[], datetime]) -> None:
        self.agent, self.args, self.journal, self.ledger, self.clock = agent, args, journal, ledger, clock
        self.tasks: list[asyncio.Future[None]] = []
        self.maintenance = StoreMaintenance(journal, ledger, lambda: agent.policy, clock)
        self.dev: DevSession | None = None
        self.layer: SessionLayer | None = None
        self.guard: AppGuard | None = None
        self.network: NetworkFilter | None = None
        self.payments: PaymentsService | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        args, agent = self.args, self.agent
        self.loop = asyncio.get_running_loop()
        self.tasks.append(asyncio.ensure_future(self.maintenance.run()))
        bus_address = args.bus_address
        if args.dev:
            self.dev = DevSession(agent, child_uid=args.child_uid[0] if args.child_uid_given else None)
            await self.dev.start()
            self.layer, bus_address = self.dev.layer, self.dev.address
            agent.subscribe(DevChild(self.dev))
        elif args.bus_address != "none":
            self.layer = SessionLayer(agent, SessionConfig(
                child_uid=frozenset(args.child_uid), bus_address=args.bus_address,
                guardian_secret=_guardian_secret(args.guardian_secret)))
            await self.layer.start()
        if args.dns_upstream:
            self.network = _start_network_filter(agent, args, self.clock)
        if args.exec_gate_mark:
            self.guard = await self._start_exec_gate()
            self.tasks.append(asyncio.ensure_future(
                self.guard.run_tracking(agent.app_started, agent.app_stopped)))
        if bus_address != "none":
            apps = self.guard.apps if self.guard is not None else {}
            self.payments = PaymentsService(
                ledger=self.ledger, policy=lambda: agent.policy,
                identifier=ExeMapIdentifier.from_catalogue(apps_by_executable(apps)),
                events=agent.events, clock=self.clock, bus_address=bus_address)
            await self.payments.start()

    async def _start_exec_gate(self) -> AppGuard:
        """The exec gate on the mounts the device settings name (never in tests: they mark
        only a tmpfs of their own through AppGuard directly)."""
        args, agent = self.args, self.agent
        config = AppGuardConfig(
            marks=tuple(args.exec_gate_mark),
            child_uids=frozenset(args.child_uid),
            gate=GateConfig(
                also_restricted=frozenset(args.child_uid),
                base_paths=tuple(str(b) for b in args.exec_gate_base if not b.is_dir()),
                base_trees=tuple(str(b) for b in args.exec_gate_base if b.is_dir()),
            ),
        )
        guard = AppGuard(config, agent.events, self._tell_child_blocked, self._gate_outage, self.clock)
        decision = agent.decision or agent.tick()
        await guard.start(decision.apps)
        agent.subscribe(guard.on_decision)
        return guard

    def _tell_child_blocked(self, app_id: str, text: str) -> None:
        if self.layer is not None:
            self.layer.service.app_blocked(app_id, text)
        log.info("app blocked: %s (%s)", app_id, text)

    def _gate_outage(self, down: bool) -> None:
        """Called from the gate's supervisor thread: lock every child session meanwhile."""
        log.warning("exec gate %s", "down: locking the child's sessions" if down else "back")
        if down and self.layer is not None and self.loop is not None:
            asyncio.run_coroutine_threadsafe(self.layer.watcher.lock_sessions(), self.loop)

    async def stop(self) -> None:
        self.maintenance.stop()
        for task in self.tasks[1:]:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.payments is not None:
            await self.payments.stop()
        if self.guard is not None:
            await self.guard.stop()
        if self.network is not None:
            self.network.stop()
        if self.dev is not None:
            await self.dev.stop()
        elif self.layer is not None:
            await self.layer.stop()


def _guardian_secret(path: Path | None) -> bytes | None:
    """The secret shared with the guardian at pairing (raw bytes, root-only file)."""
    if path is None or not path.exists():
        return None
    secret = path.read_bytes()
    if len(secret) < 16:
        log.error("%s: a guardian secret has at least 16 bytes; guardian codes are refused", path)
        return None
    return secret


def _address(text: str) -> tuple[str, int]:
    """"IP:PORT" or "[IPv6]:PORT"."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected IP:PORT, e.g. 127.0.0.1:53")
    return host.strip("[]"), int(port)


def _base_path(text: str) -> Path:
    """An existing absolute file or directory, resolved (the gate compares real paths)."""
    path = Path(text)
    if not path.is_absolute() or not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r}: expected an existing absolute path")
    return path.resolve()


def _start_network_filter(agent: Agent, args: argparse.Namespace,
                          clock: Callable[[], datetime]) -> NetworkFilter:
    """The DNS filter and the nftables table; follows each Decision's filter profile.
    `clock` is the trusted time the journal stamps with: DNS blocks carry it too."""
    settings = FilterSettings(listen=tuple(args.dns_listen or [("127.0.0.1", 53)]),
                              upstreams=tuple(args.dns_upstream),
                              lists_dir=args.lists or args.state / "lists")
    network = NetworkFilter(settings, child_uids=tuple(args.child_uid), clock=clock, events=agent.events)
    decision = agent.decision or agent.tick()
    network.start(decision.filter, decision.policy_version)
    agent.subscribe(lambda d, _prev: network.update(d.filter, d.policy_version))
    return network


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="minormode-agent", description=__doc__)
    p.add_argument("--policy", type=Path, default=Path("/etc/minormode/policy.toml"))
    p.add_argument("--state", type=Path, default=Path("/var/lib/minormode"))
    p.add_argument("--band", default=AgeBand.AGE_8_12.value, choices=[b.value for b in AgeBand],
                   help="age band whose defaults apply when no policy ever loaded")
    p.add_argument("--dev", action="store_true",
                   help="development mode: simulated clock and a simulated child using the device")
    p.add_argument("--speed", type=float, default=60.0, help="dev: simulated seconds per real second")
    p.add_argument("--start", default="2026-11-23T06:55:00+08:00", help="dev: simulated start time")
    p.add_argument("--child-uid", type=int, action="append", default=[],
                   help="the child's unix uid (repeatable; default 1000)")
    p.add_argument("--exec-gate-mark", action="append", default=[], metavar="MOUNT",
                   help="enforce the app allowlist at exec time on this mount (repeatable; the "
                        "device image passes /; without it the exec gate is off)")
    p.add_argument("--exec-gate-base", type=_base_path, action="append", default=[], metavar="PATH",
                   help="a program (file) or every program under a directory the child's session "
                        "needs whatever the policy says, e.g. the user manager (repeatable)")
    p.add_argument("--dns-upstream", type=_address, action="append", default=[], metavar="IP:PORT",
                   help="resolver the DNS filter forwards to (repeatable; without it the filter is off)")
    p.add_argument("--dns-listen", type=_address, action="append", default=[], metavar="IP:PORT",
                   help="where the DNS filter listens (default 127.0.0.1:53)")
    p.add_argument("--lists", type=Path, help="compiled domain lists (default STATE/lists)")
    p.add_argument("--bus-address", default=None,
                   help="D-Bus for logind and the agent's services (default: the system bus; "
                        "\"none\" runs without D-Bus)")
    p.add_argument("--guardian-secret", type=Path, default=None,
                   help="file with the secret shared at pairing, for offline guardian codes")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-file", type=Path, help="log here instead of standard error")
    args = p.parse_args(argv)
    if args.speed <= 0 or args.speed > 10_000:
        p.error(f"--speed {args.speed}: must be above 0 and at most 10000")
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError:
        p.error(f"--start {args.start!r}: not an ISO time with an offset")
    if start.tzinfo is None:
        p.error(f"--start {args.start!r}: give an offset, e.g. +08:00")
    args.start = start.astimezone(UTC)
    args.child_uid_given = bool(args.child_uid)
    args.child_uid = args.child_uid or [1000]
    if any(uid <= 0 for uid in args.child_uid):
        p.error(f"--child-uid {args.child_uid}: the child is never root")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        **({"filename": str(args.log_file)} if args.log_file else {"stream": sys.stderr}))
    args.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = StateStore(args.state / "state.sqlite")
    clock: ClockSource = SimulatedClock(args.start, args.speed) if args.dev else SystemClock()
    layout = StoreLayout(args.state)
    holder: list[Agent] = []  # the journal opens before the agent exists

    def trusted() -> datetime:
        return holder[0].trusted_now if holder else datetime.now(UTC)

    journal = layout.open_journal(clock=trusted)
    ledger = layout.open_ledger()
    agent = Agent(store, clock, args.policy, AgeBand(args.band), events=journal)
    holder.append(agent)
    result = agent.load_policy()
    if not result.ok:
        log.warning("running with policy version %d (%s)", agent.policy.version,
                    "last good" if store.last_policy() else f"band {args.band} defaults")
    if args.dev:
        log.info("development mode: simulated clock at %gx from %s; the simulated child uses the "
                 "device whenever it is unlocked. Ctrl-C stops.", args.speed, args.start.isoformat())

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, agent.stop)
        loop.add_signal_handler(signal.SIGINT, agent.stop)
        loop.add_signal_handler(signal.SIGHUP, agent.load_policy)
        services = Services(agent, args, journal, ledger, trusted)
        try:
            await services.start()
            await agent.run()
        finally:
            await services.stop()

    try:
        asyncio.run(serve())
    finally:
        journal.close()
        ledger.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
