"""The device's side of pairing (PROTOCOL.md §7), one attempt at a time, kept when it ends.

`protocol.pairing.DevicePairing` is the pure state machine; this adds what the device does
with the result: the keyring and pairing's first messages stored in one transaction, the
journal sealed to the guardians from then on (what was sealed to the device's local key is
re-wrapped for them), the first messages applied through the inbox, and a signed `paired`
message queued for the server. Pairing is allowed only on an unpaired device: a paired one
changes guardians through its keyring, never by pairing again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.store.events import Event, EventKind, EventSink
from agent.trust.inbox import Delivery, GuardianInbox
from agent.trust.store import TrustStore
from protocol.errors import ProtocolError
from protocol.keyring import Keyring
from protocol.messages import Paired
from protocol.pairing import Complete, DevicePairing, Offer, PairingError, PairingState, Response, Reveal

log = logging.getLogger("minormode.trust")
PAIRING_MINUTES = 10


class GuardianRecipients(Protocol):
    """The journal as pairing needs it: whom new segments are sealed to."""

    def pair(self, guardians: Iterable[X25519PublicKey]) -> int: ...

    def forget_guardians(self) -> None: ...


@dataclass(frozen=True)
class PairingDone:
    guardian: str  # label or key id
    family: str
    deliveries: tuple[Delivery, ...]
    by_qr: bool


def seal_journal_to(journal: GuardianRecipients, ring: Keyring) -> None:
    """New segments are sealed to exactly the active guardians (earlier segments keep the
    recipients they had; pre-pairing segments are re-wrapped for the guardians)."""
    journal.forget_guardians()
    journal.pair([g.seal_key for g in ring.seal_keys])


class PairingFlow:
    def __init__(self, inbox: GuardianInbox, journal: GuardianRecipients, events: EventSink,
                 clock: Callable[[], datetime], on_paired: Callable[[], None] = lambda: None) -> None:
        self.inbox, self.journal, self.events, self.clock = inbox, journal, events, clock
        self.on_paired = on_paired
        self.attempt: DevicePairing | None = None
        self.started: datetime | None = None
        self.session = ""

    @property
    def trust(self) -> TrustStore:
        return self.inbox.trust

    @property
    def state(self) -> str:
        if self.trust.paired:
            return "paired"
        if self.attempt is None or self._expired():
            return "idle"
        return self.attempt.state.value

    @property
    def sas(self) -> str:
        return (self.attempt.sas or "") if self.attempt is not None and not self._expired() else ""

    def _expired(self) -> bool:
        age = None if self.started is None else (self.clock() - self.started).total_seconds()
        return age is not None and age > PAIRING_MINUTES * 60

    def begin(self, session: str = "") -> Offer:
        """A fresh attempt (any earlier one is abandoned)."""
        if self.trust.paired:
            raise PairingError("pairing", "this device is paired already; its guardians add others")
        self.attempt = DevicePairing(self.inbox.device)
        self.started = self.clock()
        self.session = session
        return self.attempt.offer()

    def _current(self, step: str) -> DevicePairing:
        if self.attempt is None or self._expired():
            raise PairingError(step, "no pairing in progress (it expires after 10 minutes)")
        return self.attempt

    def respond(self, response: Response) -> tuple[Reveal, str]:
        attempt = self._current("response")
        try:
            reveal = attempt.on_response(response)
        except PairingError as exc:
            self._refused(exc)
            raise
        assert attempt.sas is not None
        return reveal, attempt.sas

    def complete(self, complete: Complete, *, sas_confirmed: bool) -> PairingDone:
        attempt = self._current("complete")
        try:
            result = attempt.on_complete(complete, sas_confirmed=sas_confirmed)
        except PairingError as exc:
            self._refused(exc)
            raise
        now = self.clock()
        unix = int(now.timestamp())
        messages = [(mid, sealed.encode()) for mid, sealed in result.messages]
        self.trust.save_keyring(result.keyring, paired_at=unix, received=messages)
        seal_journal_to(self.journal, result.keyring)
        guardian = result.guardian.label or result.guardian.id
        self.events.record(Event(EventKind.PAIRED, now, {
            "family": result.keyring.family, "guardian": guardian, "by_qr": result.by_qr}))
        deliveries = tuple(self.inbox.deliver(mid, data) for mid, data in self.trust.received())
        head = result.keyring
        self.inbox.signer.enqueue("paired", Paired(head.head_hash, head.head_seq, self.session or "00" * 16))
        self.attempt = None
        log.info("paired with %s (family %s, %s)", guardian, head.family, "QR" if result.by_qr else "SAS")
        self.on_paired()
        return PairingDone(guardian, head.family, deliveries, result.by_qr)

    def abort(self) -> None:
        if self.attempt is not None:
            self.attempt.abort()
        self.attempt = None

    def _refused(self, exc: ProtocolError) -> None:
        self.attempt = None
        self.events.record(Event(EventKind.BAD_SIGNATURE, self.clock(), {
            "what": "pairing refused", "where": exc.where, "why": exc.problem[:300]}))


__all__ = ["PairingDone", "PairingFlow", "PairingState", "seal_journal_to"]
