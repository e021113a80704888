"""Every enforcement layer around the Agent, started in order and stopped in reverse.

The session layer comes first: the exec gate reports blocks to the child through it and
locks the session through it while the gate is down; the payments broker identifies
callers from the exec gate's app catalogue. Which layers run follows the `DaemonConfig`:
no `--dns-upstream` nor `--dns-upstreams-from`, no DNS filter; no `--exec-gate-mark`, no
exec gate; `--bus-address none`, no D-Bus at all. Development mode's parts (`agent.dev`)
are imported here only when `config.dev` is set, so a device never loads them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from agent.api.callers import ExeMapIdentifier
from agent.api.guardian_service import guardian_object
from agent.api.payments import PaymentsService
from agent.bus.background import BackgroundTasks
from agent.core.decision import Decision
from agent.core.guardian_code import parse_secret
from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.catalogue import DEFAULT_DIRS, apps_by_executable
from agent.execgate.table import GateConfig
from agent.filter.match import missing_lists_text
from agent.filter.resolvers import ResolverFile
from agent.filter.server import FilterSettings
from agent.filter.service import NetworkFilter
from agent.os.appwatch import AppWatch
from agent.runtime.agent import Agent
from agent.runtime.clock import TrustedClock
from agent.runtime.config import DaemonConfig
from agent.runtime.lockdown import DeviceLockdown
from agent.runtime.notify import StartProgress
from agent.session.layer import SessionConfig, SessionLayer
from agent.store.floodsink import FloodSink
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.maintenance import StoreMaintenance
from agent.store.queueing import QueueingSink
from agent.sync.daily import DailyCounts
from agent.sync.requests import RequestCollector
from agent.sync.service import SyncService
from agent.sync.sources import DaemonSource
from agent.sync.store import SYNC_DB, SyncStore
from agent.trust.control import TrustControl
from agent.trust.layer import TrustLayer

if TYPE_CHECKING:  # development only: imported at run time only with --dev
    from agent.dev.session import DevSession

log = logging.getLogger("minormode.agent")


class Services:
    def __init__(self, agent: Agent, config: DaemonConfig, journal: Journal, ledger: Ledger,
                 trusted: TrustedClock, trust: TrustLayer, counts: DailyCounts,
                 requests: RequestCollector | None = None, flood: FloodSink | None = None,
                 queue: QueueingSink | None = None, progress: StartProgress | None = None) -> None:
        """`trusted.latest` is the trusted time for every stamp; `trust` exists before the
        services (a paired device must refuse the policy file at start-up already);
        `progress` hears each start phase (systemd's start deadline follows them)."""
        self.progress = progress or StartProgress()
        clock = trusted.latest
        self.agent, self.config, self.ledger, self.clock, self.trusted = agent, config, ledger, clock, trusted
        self.trust, self.journal, self.counts, self.requests = trust, journal, counts, requests
        self.flood = flood  # the daemon's flood gates: D-Bus writers ask them before writing
        self.sync: SyncService | None = None
        self._sync_task: asyncio.Future[None] | None = None
        self.maintenance = StoreMaintenance(journal, ledger, lambda: agent.policy, clock, flood=flood,
                                            queue=queue)
        self.dev: DevSession | None = None
        self.layer: SessionLayer | None = None
        self.guard: AppGuard | None = None
        self.network: NetworkFilter | None = None
        self.payments: PaymentsService | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._maintenance_task: asyncio.Future[None] | None = None
        self._tracking_task: asyncio.Future[None] | None = None
        self._appwatch_task: asyncio.Future[None] | None = None
        self._resolvers_task: asyncio.Future[None] | None = None
        self._background = BackgroundTasks(log, "announcing a guardian's purchase decision")
        self.lockdown = DeviceLockdown(agent, config, clock)  # boot check, USBGuard, device watch

    async def start(self) -> None:
        config, agent = self.config, self.agent
        self.loop = asyncio.get_running_loop()
        self._maintenance_task = asyncio.ensure_future(self.maintenance.run())
        self.progress.phase("session")
        bus_address = await self._start_session()
        if config.dashboard is not None:
            self.sync = self._make_sync(config.dashboard)
        if self.layer is not None:
            controller = self.layer.controller
            if self.flood is not None:
                controller.admit = self.flood.admit
            self.trust.attach(controller)
            self.layer.service.export(guardian_object(TrustControl(self.trust, self.sync)))
            sync = self.sync
            if sync is not None:
                def facts() -> tuple[str, int, int]:
                    s = sync.status()
                    return self.trust.policy_signer(), s.last_contact or 0, s.pending_uploads + s.outbox

                controller.sync_facts = facts
        self.trust.start()
        self.progress.phase("device lockdown")
        await self.lockdown.start(bus_address)
        if config.dns_filter_on:
            self.progress.phase("network filter")
            self.network = self._start_network_filter()
            if self.layer is not None:
                self.layer.controller.filter_facts = self._filter_facts
        if config.exec_gate_marks:
            self.progress.phase("exec gate")
            self.guard = await self._start_exec_gate()
            self._tracking_task = asyncio.ensure_future(
                self.guard.run_tracking(agent.app_started, agent.app_stopped))
            self._appwatch_task = asyncio.ensure_future(self._watch_installs(self.guard).run())
            if agent.decision is not None:
                self._filter_decision(agent.decision)  # the catalogue's domains, now known
        if bus_address != "none":
            self.progress.phase("payments")
            self.payments = PaymentsService(
                ledger=self.ledger, policy=lambda: agent.policy,
                identifier=self._callers(),
                events=agent.events, clock=self.clock, bus_address=bus_address,
                admit=self.flood.admit if self.flood is not None else None)
            await self.payments.start()
            payments = self.payments

            async def announce() -> None:
                await payments.announce_decisions()

            self.trust.effects.on_purchase_decided = lambda: self._background.spawn(announce())
        if self.sync is not None:
            self._sync_task = asyncio.ensure_future(self.sync.run())
            if config.pair_on_start and not self.trust.store.paired:
                self.sync.start_pairing(again_when_expired=True)

    def _make_sync(self, url: str) -> SyncService:
        """The dashboard client: requests the collector queues wake it; its status changes
        reach the child's screen and root through Guardian1's signals."""
        source = DaemonSource(lambda: self.agent.policy, self.agent.store, self.ledger,
                              lambda: self.guard.apps if self.guard is not None else {})
        sync = SyncService(url, self.trust, self.journal, SyncStore(self.config.state / SYNC_DB), self.counts,
                           source, self.trusted, ca_file=self.config.dashboard_ca,
                           on_change=lambda: self.layer.service.refresh() if self.layer is not None else None,
                           events=self.agent.events)
        if self.requests is not None:
            self.requests.poke = sync.poke
        self.trust.inbox.on_answer = sync.poke
        return sync

    async def _start_session(self) -> str | None:
        """The session layer (or development mode's private bus with a fake logind and a
        simulated child); returns the bus the other services use ("none": no D-Bus)."""
        config, agent = self.config, self.agent
        if config.dev:
            from agent.dev import start_dev_session  # noqa: PLC0415 - development only

            self.dev = await start_dev_session(agent, config.dev_child_uid,
                                               read_guardian_secret(config.guardian_secret))
            self.layer = self.dev.layer
            return self.dev.address
        if config.uses_bus:
            self.layer = SessionLayer(agent, SessionConfig(
                child_uid=frozenset(config.child_uids), bus_address=config.bus_address,
                lockers=config.lockers,
                guardian_secret=read_guardian_secret(config.guardian_secret)))
            await self.layer.start()
        return config.bus_address

    def _start_network_filter(self) -> NetworkFilter:
        """The DNS filter and the nftables table; follows each Decision's filter profile."""
        config, agent = self.config, self.agent
        listen = config.dns_listen_addresses
        upstreams = config.dns_upstreams
        resolvers = None
        if config.dns_upstreams_from is not None:  # the network's, followed as it changes
            resolvers = ResolverFile(config.dns_upstreams_from, listen)
            upstreams = resolvers.read()
        settings = FilterSettings(listen=listen, upstreams=upstreams, lists_dir=config.lists_dir)
        network = NetworkFilter(settings, child_uids=config.child_uids, events=agent.events,
                                clock=self.clock)
        decision = agent.decision or agent.tick()
        network.start(decision.filter, decision.policy_version)
        agent.subscribe(lambda d, _prev: self._filter_decision(d))
        if resolvers is not None:
            self._resolvers_task = asyncio.ensure_future(resolvers.follow(network.set_upstreams))
        return network

    def _filter_facts(self) -> tuple[str, int]:
        """For `status`: the blocked categories that block nothing, and the flood count."""
        dns = self.network.dns if self.network is not None else None
        if dns is None:
            return "", 0
        return missing_lists_text(dns.missing_lists), dns.stats.events_dropped

    async def _start_exec_gate(self) -> AppGuard:
        """The exec gate on the mounts the device settings name (never in tests: they mark
        only a tmpfs of their own through AppGuard directly)."""
        config, agent = self.config, self.agent
        guard_config = AppGuardConfig(
            marks=config.exec_gate_marks,
            child_uids=frozenset(config.child_uids),
            desktop_dirs=config.desktop_dirs or DEFAULT_DIRS,
            gate=GateConfig(
                also_restricted=frozenset(config.child_uids),
                base_paths=tuple(str(b) for b in config.exec_gate_bases if not b.is_dir()),
                base_trees=tuple(str(b) for b in config.exec_gate_bases if b.is_dir()),
            ),
        )
        guard = AppGuard(guard_config, agent.events, self._tell_child_blocked, self._gate_outage,
                         self.clock)
        decision = agent.decision or agent.tick()
        await guard.start(decision.apps)
        agent.subscribe(guard.on_decision)
        return guard

    def _filter_decision(self, decision: Decision) -> None:
        """The network filter follows the Decision, with the domains the apps allowed now
        declare (a calls or emergency app's servers resolve in allowlist-only mode too)."""
        if self.network is None:
            return
        if self.guard is not None:
            self.network.app_domains = self.guard.allowed_domains(decision.apps)
        self.network.update(decision.filter, decision.policy_version)

    def _callers(self) -> ExeMapIdentifier:
        """Who may ask the spending broker, from the exec gate's current catalogue."""
        apps = self.guard.apps if self.guard is not None else {}
        return ExeMapIdentifier.from_catalogue(apps_by_executable(apps))

    def _watch_installs(self, guard: AppGuard) -> AppWatch:
        """Apps installed, upgraded or removed after start: the gate's verdicts and the
        broker's callers are rebuilt from the new catalogue, without a restart."""
        async def rescan() -> None:
            await guard.rescan()
            if self.agent.decision is not None:
                self._filter_decision(self.agent.decision)
            if self.payments is not None:
                self.payments.identifier = self._callers()

        return AppWatch(guard.config.desktop_dirs,
                        lambda: [exe for app in guard.apps.values() for exe in app.executables], rescan)

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
        if self.sync is not None:
            self.sync.stop()
            if self._sync_task is not None:
                await asyncio.gather(self._sync_task, return_exceptions=True)
            self.sync.store.close()
        for task in (self._tracking_task, self._appwatch_task, self._resolvers_task):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._tracking_task, self._appwatch_task, self._resolvers_task)
                               if t is not None), return_exceptions=True)
        if self.payments is not None:
            await self.payments.stop()
        if self.guard is not None:
            await self.guard.stop()
        await self.lockdown.stop()
        if self.network is not None:
            self.network.stop()  # its batcher writes the last blocked lookups through the flood sink
        # after every producer: the flood sink's refusals and the journal's pending events
        # are written on maintenance's way out, so the last second's counts are not lost
        self.maintenance.stop()
        if self._maintenance_task is not None:
            await asyncio.gather(self._maintenance_task, return_exceptions=True)
        if self.dev is not None:
            await self.dev.stop()
        elif self.layer is not None:
            await self.layer.stop()


def read_guardian_secret(path: Path | None) -> bytes | None:
    """The offline guardian code's secret from a file (before pairing provisions one): hex
    text, the one form `minormodectl guardian-code --secret-file` reads too (PROTOCOL.md §10)."""
    if path is None or not path.exists():
        return None
    try:
        secret = parse_secret(path.read_text(encoding="ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        log.error("%s: %s; guardian codes are refused", path, exc)
        return None
    return secret
