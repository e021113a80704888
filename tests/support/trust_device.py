"""A device in one process for trust-layer tests: the real Agent, journal, ledger, trust
store and D-Bus controller logic (without a bus), on a manual clock, and a way to pair it
with the reference guardian client exactly as PROTOCOL.md §7 runs through a relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbus_fast.aio import MessageBus

from agent.api.agent_controller import AgentController
from agent.api.guardian_service import guardian_object
from agent.api.service import AgentService
from agent.core.parse import policy_from_mapping
from agent.dev.clock import ManualClock
from agent.runtime.agent import Agent
from agent.runtime.clock import TrustedClock
from agent.store.events import Event, EventKind
from agent.store.journal import Journal
from agent.store.layout import StoreLayout
from agent.store.ledger import Ledger
from agent.store.state import StateStore
from agent.sync.daily import DailyCounts, TallyingSink
from agent.sync.requests import RequestCollector
from agent.sync.store import SYNC_DB
from agent.trust.control import TrustControl
from agent.trust.layer import TrustLayer
from protocol.guardian import ReferenceGuardian
from protocol.pairing import Complete, Offer, Response, Reveal
from support.sessionbus import CHILD_UID

START = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # Tuesday 12:00 in Shanghai


def policy_json(version: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"version": version, "age_band": "8-12", "timezone": "Asia/Shanghai"}
    body.update(overrides)
    policy_from_mapping(body)  # a test's policy must be valid unless it says otherwise
    return body


@dataclass
class Device:
    state: Path
    clock: ManualClock
    store: StateStore
    agent: Agent
    journal: Journal
    ledger: Ledger
    controller: AgentController
    trust: TrustLayer
    answered: list[tuple[str, bool, int, str]] = field(default_factory=list)
    trusted: TrustedClock | None = None
    counts: DailyCounts | None = None
    collector: RequestCollector | None = None

    @classmethod
    def make(cls, state: Path, policy_file: Path | None = None, start: datetime = START) -> Device:
        """Built as `agent.daemon` builds it: the events sink is the journal with the day's
        counts and the request collector in front of it."""
        state.mkdir(parents=True, exist_ok=True)
        clock = ManualClock(start, zone="Asia/Shanghai")
        store = StateStore(state / "state.sqlite")
        trusted = TrustedClock(clock, store.load_watermark(), events=store)
        journal = StoreLayout(state).open_journal(clock=trusted.latest)
        counts = DailyCounts(state / SYNC_DB)
        events = TallyingSink(journal, counts, lambda: agent.policy.timezone)
        agent = Agent(store, trusted, policy_file, events=events)
        trusted.record_events_to(events)
        ledger = StoreLayout(state).open_ledger()
        answered: list[tuple[str, bool, int, str]] = []
        controller = AgentController(agent, answered=lambda *a: answered.append(a))
        trust = TrustLayer(state, agent, journal, ledger, trusted.latest, label="tablet")
        trust.attach(controller)
        collector = RequestCollector(trust, lambda: int(trusted.latest().timestamp()))
        events.also = collector
        if policy_file is not None:
            agent.load_policy()
        trust.start()
        agent.tick()
        return cls(state, clock, store, agent, journal, ledger, controller, trust, answered,
                   trusted=trusted, counts=counts, collector=collector)

    def close(self) -> None:
        if self.counts is not None:
            self.counts.flush()
            self.counts.close()
        self.trust.close()
        self.journal.close()
        self.ledger.close()
        self.store.close()

    @property
    def now(self) -> int:
        return int(self.agent.now().timestamp())

    def pair(self, guardian: ReferenceGuardian, *, policy: dict[str, Any] | None = None,
             confirm: bool = True) -> Any:
        """The whole pairing, each message passed as JSON (what a relay does)."""
        offer = Offer.from_json(self.trust.pairing.begin().to_json())
        gp = guardian.start_pairing(offer)
        reveal, device_sas = self.trust.pairing.respond(Response.from_json(gp.response().to_json()))
        assert gp.on_reveal(Reveal.from_json(reveal.to_json())) == device_sas
        complete = guardian.finish_pairing(gp, self.now, policy=policy)
        return self.trust.pairing.complete(Complete.from_json(complete.to_json()), sas_confirmed=confirm)

    def events(self, guardian: ReferenceGuardian, kind: EventKind | None = None) -> list[Event]:
        out = [e.event for e in self.journal.read(guardian.identity.seal_key)]
        return [e for e in out if kind is None or e.kind is kind]

    def remake(self, policy_file: Path | None = None) -> Device:
        """A restart: everything closed and opened again from the same state directory."""
        self.close()
        return Device.make(self.state, policy_file, start=self.clock.wall)


__all__ = ["Device", "Journal", "Ledger", "policy_json"]


@asynccontextmanager
async def served(state: Path, bus_address: str) -> AsyncIterator[tuple[Device, AgentService, MessageBus]]:
    """A device whose Agent1 and Guardian1 objects are served on `bus_address` (the child is
    CHILD_UID), and a root connection to that bus; all closed afterwards."""
    device = Device.make(state)
    service = AgentService(device.controller, CHILD_UID, bus_address=bus_address)
    service.export(guardian_object(TrustControl(device.trust)))
    await service.start()
    root = await MessageBus(bus_address=bus_address).connect()
    try:
        yield device, service, root
    finally:
        root.disconnect()
        await service.stop()
        device.close()
