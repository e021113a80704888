"""Every enforcement layer around the Agent, started in order and stopped in reverse.

The session layer comes first: the exec gate reports blocks to the child through it and
locks the session through it while the gate is down; the payments broker identifies
callers from the exec gate's app catalogue. Which layers run follows the `DaemonConfig`:
no `--dns-upstream`, no DNS filter; no `--exec-gate-mark`, no exec gate; `--bus-address
none`, no D-Bus at all. Development mode's parts (`agent.dev`) are imported here only when
`config.dev` is set, so a device never loads them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.api.callers import ExeMapIdentifier
from agent.api.guardian_service import guardian_object
from agent.api.payments import PaymentsService
from agent.bus.background import BackgroundTasks
from agent.core.guardian_code import parse_secret
from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.catalogue import apps_by_executable
from agent.execgate.table import GateConfig
from agent.filter.server import FilterSettings
from agent.filter.service import NetworkFilter
from agent.runtime.agent import Agent
from agent.runtime.config import DaemonConfig
from agent.session.layer import SessionConfig, SessionLayer
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.maintenance import StoreMaintenance
from agent.trust.control import TrustControl
from agent.trust.layer import TrustLayer

if TYPE_CHECKING:  # development only: imported at run time only with --dev
    from agent.dev.session import DevSession

log = logging.getLogger("minormode.agent")

DEFAULT_DNS_LISTEN = ("127.0.0.1", 53)


class Services:
    def __init__(self, agent: Agent, config: DaemonConfig, journal: Journal, ledger: Ledger,
                 clock: Callable[[], datetime], trust: TrustLayer) -> None:
        """`clock()` is the trusted time (the TrustedClock's `latest`) for every stamp;
        `trust` exists before the services (a paired device must refuse the policy file
        at start-up already)."""
        self.agent, self.config, self.ledger, self.clock = agent, config, ledger, clock
        self.trust = trust
        self.maintenance = StoreMaintenance(journal, ledger, lambda: agent.policy, clock)
        self.dev: DevSession | None = None
        self.layer: SessionLayer | None = None
        self.guard: AppGuard | None = None
        self.network: NetworkFilter | None = None
        self.payments: PaymentsService | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._maintenance_task: asyncio.Future[None] | None = None
        self._tracking_task: asyncio.Future[None] | None = None
        self._background = BackgroundTasks(log, "announcing a guardian's purchase decision")

    async def start(self) -> None:
        config, agent = self.config, self.agent
        self.loop = asyncio.get_running_loop()
        self._maintenance_task = asyncio.ensure_future(self.maintenance.run())
        bus_address = await self._start_session()
        if self.layer is not None:
            self.trust.attach(self.layer.controller)
            self.layer.service.export(guardian_object(TrustControl(self.trust)))
        self.trust.start()
        if config.dns_upstreams:
            self.network = self._start_network_filter()
        if config.exec_gate_marks:
            self.guard = await self._start_exec_gate()
            self._tracking_task = asyncio.ensure_future(
                self.guard.run_tracking(agent.app_started, agent.app_stopped))
        if bus_address != "none":
            apps = self.guard.apps if self.guard is not None else {}
            self.payments = PaymentsService(
                ledger=self.ledger, policy=lambda: agent.policy,
                identifier=ExeMapIdentifier.from_catalogue(apps_by_executable(apps)),
                events=agent.events, clock=self.clock, bus_address=bus_address)
            await self.payments.start()
            payments = self.payments

            async def announce() -> None:
                await payments.announce_decisions()

            self.trust.effects.on_purchase_decided = lambda: self._background.spawn(announce())

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
                guardian_secret=read_guardian_secret(config.guardian_secret)))
            await self.layer.start()
        return config.bus_address

    def _start_network_filter(self) -> NetworkFilter:
        """The DNS filter and the nftables table; follows each Decision's filter profile."""
        config, agent = self.config, self.agent
        settings = FilterSettings(listen=config.dns_listen or (DEFAULT_DNS_LISTEN,),
                                  upstreams=config.dns_upstreams, lists_dir=config.lists_dir)
        network = NetworkFilter(settings, child_uids=config.child_uids, events=agent.events,
                                clock=self.clock)
        decision = agent.decision or agent.tick()
        network.start(decision.filter, decision.policy_version)
        agent.subscribe(lambda d, _prev: network.update(d.filter, d.policy_version))
        return network

    async def _start_exec_gate(self) -> AppGuard:
        """The exec gate on the mounts the device settings name (never in tests: they mark
        only a tmpfs of their own through AppGuard directly)."""
        config, agent = self.config, self.agent
        guard_config = AppGuardConfig(
            marks=config.exec_gate_marks,
            child_uids=frozenset(config.child_uids),
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
        self.maintenance.stop()  # it flushes the journal's pending events on its way out
        if self._tracking_task is not None:
            self._tracking_task.cancel()
        await asyncio.gather(*(t for t in (self._maintenance_task, self._tracking_task) if t is not None),
                             return_exceptions=True)
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
