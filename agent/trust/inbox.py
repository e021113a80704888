"""The one door guardian messages come through: open, verify against the keyring, apply,
answer with a signed ack.

Whatever carries a message (sync from the dashboard, root's `Deliver` on D-Bus, pairing's
first messages) hands it to `GuardianInbox.deliver`. Verification is `protocol.accept`
(pure); a refusal changes nothing, is journalled as a tamper sign, and is answered; an
accepted message goes to `AgentEffects`. The answer and its ack are stored in one
transaction after the effect, so a message delivered twice gets the same ack back, and a
crash in between re-applies an idempotent effect rather than losing it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agent.store.events import Event, EventKind, EventSink
from agent.trust.effects import AgentEffects, EffectRefused
from agent.trust.store import TrustStore
from protocol.accept import open_guardian_message
from protocol.compose import compose
from protocol.envelope import parse_body
from protocol.errors import ProtocolError
from protocol.keyring import Keyring
from protocol.keys import Identity
from protocol.messages import Ack, AckResult, Payload, PolicyMessage

log = logging.getLogger("minormode.trust")

MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
MAX_SEALED = 1_200_000
TAMPER_EVENTS_PER_HOUR = 30  # beyond this, refusals are counted into the next event


@dataclass(frozen=True)
class Delivery:
    message_id: str
    result: AckResult
    reason: str
    ack: bytes  # the signed ack (JSON envelope), b"" when no ack can be signed (not paired)


class DeviceSigner:
    """Signs device messages for the family (acks, receipts, the paired message)."""

    def __init__(self, device: Identity, trust: TrustStore, clock: Callable[[], datetime]) -> None:
        self.device, self.trust, self.clock = device, trust, clock

    def sign(self, value: Payload, family: str | None = None) -> tuple[str, bytes]:
        fam = family or self.trust.family
        if fam is None:
            raise ProtocolError("family", "this device is not paired")
        envelope = compose(self.device, fam, self.device.id, value, int(self.clock().timestamp()))
        return parse_body(envelope.body_bytes).id, envelope.encode()

    def enqueue(self, kind: str, value: Payload, family: str | None = None) -> str:
        message_id, data = self.sign(value, family)
        self.trust.enqueue(message_id, kind, data, int(self.clock().timestamp()))
        return message_id


class GuardianInbox:
    def __init__(self, trust: TrustStore, signer: DeviceSigner, effects: AgentEffects, events: EventSink,
                 clock: Callable[[], datetime]) -> None:
        self.trust, self.signer, self.effects, self.events, self.clock = trust, signer, effects, events, clock
        self._tamper_times: list[float] = []
        self._suppressed = 0
        self.on_answer: Callable[[], None] = lambda: None  # an ack is waiting to be sent

    @property
    def device(self) -> Identity:
        return self.signer.device

    def deliver(self, message_id: str, sealed: bytes, *, keyring: Keyring | None = None) -> Delivery:
        """Open and apply one guardian message queued under `message_id`. `keyring` is given
        only at pairing, before the keyring is stored."""
        now = self.clock()
        unix = int(now.timestamp())
        if not isinstance(message_id, str) or MESSAGE_ID.fullmatch(message_id) is None:
            return self._refuse_unsigned(message_id, "message id: expected 32 lowercase hex characters", now)
        if len(sealed) > MAX_SEALED:
            return self._refuse_unsigned(message_id, f"message: {len(sealed)} bytes is too large", now)
        earlier = self.trust.answer_for(message_id)
        if earlier is not None:
            return Delivery(message_id, AckResult.DUPLICATE, earlier.reason, earlier.ack)
        ring = keyring or self._keyring(now)
        if ring is None:
            return self._refuse_unsigned(message_id, "this device is not paired", now)
        try:
            accepted = open_guardian_message(sealed, message_id, self.device, ring,
                                             self.trust.replay_state(unix), unix)
        except ProtocolError as exc:
            self._tamper(now, "guardian message refused", message_id, exc.where, exc.problem)
            return self._answer(ring, message_id, "unknown", unix + 86_400, AckResult.REFUSED,
                                str(exc), None, unix)
        body = accepted.body
        try:
            done = self.effects.apply(accepted)
        except EffectRefused as exc:
            log.warning("guardian message %s (%s) not applied: %s", message_id, body.type.value, exc)
            return self._answer(ring, message_id, body.type.value, body.exp, AckResult.REFUSED, str(exc),
                                None, unix)
        log.info("guardian message %s (%s from %s): %s", message_id, body.type.value,
                 accepted.signer.label or accepted.signer.id, done)
        policy = (body.seq, accepted.signer.id) if isinstance(accepted.payload, PolicyMessage) else None
        return self._answer(ring, message_id, body.type.value, body.exp, AckResult.APPLIED, done, policy,
                            unix, applied=True)

    # -- answers ---------------------------------------------------------------------------

    def _answer(self, ring: Keyring, message_id: str, type_: str, exp: int, result: AckResult, reason: str,
                policy: tuple[int, str] | None, now: int, applied: bool = False) -> Delivery:
        version = policy[0] if policy is not None else self.trust.policy_version
        ack = Ack(message_id, type_, result, reason[:500], now if applied else None, version)
        ack_id, data = self.signer.sign(ack, ring.family)
        self.trust.record_answer(message_id=message_id, type_=type_, exp=exp, result=result.value,
                                 reason=reason[:500], at=now, ack_id=ack_id, ack=data, policy=policy)
        self.on_answer()
        return Delivery(message_id, result, reason, data)

    def _refuse_unsigned(self, message_id: object, why: str, now: datetime) -> Delivery:
        self._tamper(now, "guardian message refused", str(message_id)[:64], "message", why)
        return Delivery(str(message_id)[:64], AckResult.REFUSED, why, b"")

    def _keyring(self, now: datetime) -> Keyring | None:
        try:
            return self.trust.keyring()
        except ProtocolError as exc:
            # The stored keyring no longer verifies: someone edited trust.sqlite.
            self._tamper(now, "stored keyring does not verify", "", exc.where, exc.problem)
            return None

    def _tamper(self, now: datetime, what: str, message_id: str, where: str, problem: str) -> None:
        """A refusal is a tamper sign; a flood of them is folded into counts."""
        t = now.timestamp()
        self._tamper_times = [x for x in self._tamper_times if t - x < 3600]
        log.warning("%s %s: %s: %s", what, message_id, where, problem)
        if len(self._tamper_times) >= TAMPER_EVENTS_PER_HOUR:
            self._suppressed += 1
            return
        self._tamper_times.append(t)
        self.events.record(Event(EventKind.BAD_SIGNATURE, now, {
            "what": what, "message": message_id, "where": where, "why": problem[:300],
            "suppressed_before": self._suppressed}))
        self._suppressed = 0
