"""The trust layer assembled for the daemon: store, device identity, inbox, effects, pairing.

`TrustLayer(...)` is what `agent.runtime.services` builds and what tests drive in-process.
At start it tells the Agent whether the device is paired (a paired device refuses local
policy files) and makes the journal seal to exactly the keyring's guardians (a crash
between storing the keyring and re-sealing the journal is repaired here), then applies any
guardian message that was taken in but not yet answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.api.agent_controller import AgentController
from agent.store import seal
from agent.store.events import Event, EventKind
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.trust.effects import AgentEffects, RequestAnswers, TrustedAgent
from agent.trust.identity import device_identity
from agent.trust.inbox import Delivery, DeviceSigner, GuardianInbox
from agent.trust.pairing import PairingFlow, seal_journal_to
from agent.trust.store import TrustStore
from protocol.compose import compose, seal_to_guardians
from protocol.envelope import envelope_from_json, parse_body
from protocol.errors import ProtocolError
from protocol.keyring import Keyring
from protocol.messages import Payload, Receipt
from protocol.sealing import Sealed

log = logging.getLogger("minormode.trust")
TRUST_DB = "trust.sqlite"


@dataclass(frozen=True)
class TrustStatus:
    paired: bool
    family: str
    guardians: tuple[tuple[str, str], ...]  # (key id, label)
    policy_version: int  # of the signed stream (0: none since pairing)
    policy_signer: str
    pairing: str  # idle | offered | revealed | paired
    sas: str
    device_id: str
    outbox: int


class TrustLayer:
    def __init__(self, state: Path, agent: TrustedAgent, journal: Journal, ledger: Ledger,
                 clock: Callable[[], datetime], *, label: str = "",
                 requests: RequestAnswers | None = None) -> None:
        self.agent, self.journal, self.clock = agent, journal, clock
        self.store = TrustStore(state / TRUST_DB)
        self.device = device_identity(state, label)
        self.signer = DeviceSigner(self.device, self.store, clock)
        self.effects = AgentEffects(agent, self.store, ledger, journal, self._send_receipt, requests)
        self.inbox = GuardianInbox(self.store, self.signer, self.effects, agent.events, clock)
        self.pairing = PairingFlow(self.inbox, journal, agent.events, clock, on_paired=self._paired_changed)
        agent.paired = lambda: self.store.paired  # a paired device refuses local policy files
        self._local_seal_key = state / "journal-local.key"

    def attach(self, controller: AgentController) -> None:
        """The session layer is up: answers to the child's requests go through its
        controller (which tells the child), and guardian codes use the provisioned secret."""
        self.effects.requests = controller
        self.effects.on_code_secret = controller.secret_rotated
        controller.secret_source = self.code_secret
        controller.sync_facts = lambda: (self.policy_signer(), 0, 0)

    def start(self) -> None:
        ring = self._keyring()
        self._paired_changed()
        if ring is not None:
            if self._journal_guardians() != sorted(g.seal_hex for g in ring.seal_keys):
                log.warning("journal recipients differ from the keyring: re-sealing to the guardians")
                seal_journal_to(self.journal, ring)
            self._retire_local_key()
        for message_id, sealed in self.store.received():
            self.inbox.deliver(message_id, sealed)

    def close(self) -> None:
        self.store.close()

    # -- what other layers call --------------------------------------------------------------

    def deliver(self, message_id: str, sealed: bytes) -> Delivery:
        """A guardian message from any carrier; durable before it is applied."""
        self.store.receive([(message_id, sealed)], int(self.clock().timestamp()))
        return self.inbox.deliver(message_id, sealed)

    def deliver_keyring(self, entries_json: object) -> Keyring:
        """Keyring entries (a guardian added or removed; entries already held are skipped);
        refused unless they extend the keyring held. New segments are sealed to the
        guardians of the new keyring."""
        ring = self._keyring()
        if ring is None:
            raise ProtocolError("keyring", "this device is not paired")
        try:
            if not isinstance(entries_json, list):
                raise ProtocolError("keyring", "expected an array of entries")
            new = ring.extend_all(envelope_from_json(e, f"keyring[{i}]") for i, e in enumerate(entries_json))
        except ProtocolError as exc:
            self.agent.events.record(Event(EventKind.BAD_SIGNATURE, self.clock(), {
                "what": "keyring entry refused", "where": exc.where, "why": exc.problem[:300]}))
            raise
        if new.head_seq != ring.head_seq:
            self.store.save_keyring(new)
            seal_journal_to(self.journal, new)
            self.agent.events.record(Event(EventKind.PAIRED, self.clock(), {
                "family": new.family, "guardians": len(new.guardians), "keyring_seq": new.head_seq}))
        return new

    def sealed_for_guardians(self, value: Payload, context: Callable[[str, str, str], str]
                             ) -> tuple[str, Sealed] | None:
        """A device message (a request, a summary, the catalogue) signed by the device and
        sealed to every active guardian, under `context(family, device id, message id)`;
        (message id, sealed), or None while unpaired."""
        ring = self._keyring()
        if ring is None:
            return None
        envelope = compose(self.device, ring.family, self.device.id, value, int(self.clock().timestamp()))
        message_id = parse_body(envelope.body_bytes).id
        return message_id, seal_to_guardians(envelope, context(ring.family, self.device.id, message_id), ring)

    def policy_signer(self) -> str:
        """Who signed the policy in force: the guardian's label (or key id); "" unsigned."""
        kid = self.store.policy_signer
        ring = self._keyring() if kid else None
        party = ring.guardians.get(kid) if ring is not None else None
        return (party.label or kid) if party is not None else kid

    def code_secret(self) -> tuple[bytes, int] | None:
        return self.store.code_secret()

    def status(self) -> TrustStatus:
        ring = self._keyring()
        guardians = tuple((k, g.label) for k, g in sorted(ring.guardians.items())) if ring else ()
        return TrustStatus(ring is not None, ring.family if ring else "", guardians,
                           self.store.policy_version, self.store.policy_signer, self.pairing.state,
                           self.pairing.sas, self.device.id, len(self.store.outgoing(1000)))

    # -- inside --------------------------------------------------------------------------------

    def _keyring(self) -> Keyring | None:
        try:
            return self.store.keyring()
        except ProtocolError as exc:
            self.agent.events.record(Event(EventKind.BAD_SIGNATURE, self.clock(), {
                "what": "stored keyring does not verify", "where": exc.where, "why": exc.problem[:300]}))
            log.error("the stored keyring does not verify (%s); signed messages are refused", exc)
            return None

    def _paired_changed(self) -> None:
        if self.store.paired:
            self._retire_local_key()

    def _journal_guardians(self) -> list[str]:
        return sorted(seal.recipient_id(g) for g in self.journal.guardians())

    def _retire_local_key(self) -> None:
        """Once no segment is sealed to the device-local key any more, the key goes."""
        local_left = any(role == "device-local" for info in self.journal.segments()
                         for role, _ in info.recipients)
        if self._local_seal_key.exists() and not local_left:
            self._local_seal_key.unlink()

    def _send_receipt(self, receipt: Receipt) -> None:
        self.signer.enqueue("receipt", receipt)
