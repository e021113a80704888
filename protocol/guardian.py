"""A reference guardian client in Python that follows PROTOCOL.md: what the web app does,
without a browser, for the device's tests, the dashboard's tests and the demo.

It holds one guardian's private keys and its view of the family keyring, pairs devices,
signs and seals policies and decisions, opens what devices seal to it and verifies their
acknowledgements. It trusts nothing it is given without checking it, as the web app must.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from protocol.compose import compose, seal_to_device
from protocol.encoding import loads
from protocol.envelope import Body, Envelope, MessageType, Purpose, parse, parse_body, verify
from protocol.errors import ProtocolError, SignatureError
from protocol.keyring import Keyring, Op
from protocol.keys import Identity, PublicParty
from protocol.messages import (
    Ack,
    Consent,
    Decision,
    Payload,
    PolicyMessage,
    SetGuardianCode,
    parse_payload,
)
from protocol.pairing import Complete, GuardianPairing, Offer, QrPayload
from protocol.sealing import Sealed, open_sealed, sealed_from_json

CONSENT_NOTICE = "2026-12"


@dataclass
class ReferenceGuardian:
    identity: Identity = field(default_factory=lambda: Identity.generate(is_device=False, label="Guardian"))
    keyring: Keyring | None = None
    code_secrets: dict[str, bytes] = field(default_factory=dict)  # device id -> guardian-code secret
    policy_versions: dict[str, int] = field(default_factory=dict)  # device id -> last version sent

    @property
    def kid(self) -> str:
        return self.identity.id

    @property
    def family(self) -> str:
        if self.keyring is None:
            raise ProtocolError("keyring", "this guardian has no family yet")
        return self.keyring.family

    # -- pairing -----------------------------------------------------------------------

    def start_pairing(self, offer: Offer, qr: QrPayload | None = None) -> GuardianPairing:
        return GuardianPairing(self.identity, offer, keyring=self.keyring, qr=qr)

    def finish_pairing(self, pairing: GuardianPairing, now: int, *, policy: dict[str, Any] | None = None,
                       usage_reports: bool = True, code_secret: bytes | None = None,
                       unlock_minutes: int = 30) -> Complete:
        """After the guardian confirmed the SAS: the keyring with the device, and the first
        messages (consent, the guardian-code secret, optionally a policy)."""
        ring = pairing.keyring_for_device(now)
        assert pairing.device is not None
        self.keyring = ring
        device = pairing.device.id
        secret = code_secret or os.urandom(32)
        self.code_secrets[device] = secret
        values: list[tuple[Payload, int]] = [
            (Consent(CONSENT_NOTICE, "zh-CN", True, usage_reports, False), 0),
            (SetGuardianCode(secret, unlock_minutes), 0),
        ]
        if policy is not None:
            values.append((PolicyMessage(policy), int(policy["version"])))
            self.policy_versions[device] = int(policy["version"])
        messages = tuple(self.message(device, v, now, seq=seq) for v, seq in values)
        return pairing.complete(ring, messages)

    # -- rules and answers ---------------------------------------------------------------

    def message(self, device: str, value: Payload, now: int, *, seq: int = 0,
                lifetime: int | None = None) -> tuple[str, Sealed]:
        """Sign and seal one guardian message for `device`: (message id, sealed blob)."""
        ring = self._ring()
        envelope = compose(self.identity, ring.family, device, value, now, seq=seq, lifetime=lifetime)
        body_id = _body(envelope).id
        return body_id, seal_to_device(envelope, body_id, ring, device)

    def policy(self, device: str, policy: dict[str, Any], now: int) -> tuple[str, Sealed]:
        version = int(policy["version"])
        self.policy_versions[device] = version
        return self.message(device, PolicyMessage(policy), now, seq=version)

    def decide(self, device: str, decision: Decision, now: int) -> tuple[str, Sealed]:
        return self.message(device, decision, now)

    # -- the keyring ---------------------------------------------------------------------

    def add_guardian(self, other: PublicParty, now: int) -> Envelope:
        ring = self._ring()
        entry = ring.entry(self.identity, Op.ADD_GUARDIAN, party=other, now=now)
        self.keyring = ring.extend(entry)
        return entry

    def remove_guardian(self, kid: str, now: int) -> Envelope:
        ring = self._ring()
        entry = ring.entry(self.identity, Op.REMOVE_GUARDIAN, target=kid, now=now)
        self.keyring = ring.extend(entry)
        return entry

    def adopt_keyring(self, entries: list[Envelope], head_hash: str) -> None:
        """A second guardian: trust the keyring only if it reaches the head from the
        invitation link and names this guardian's own keys."""
        ring = Keyring.from_entries(entries)
        if not ring.contains_head(head_hash):
            raise ProtocolError("keyring", "does not contain the head hash from the invitation")
        if self.kid not in ring.guardians or not ring.guardians[self.kid].same_keys(self.identity.public):
            raise ProtocolError("keyring", "does not name this guardian's keys")
        self.keyring = ring

    # -- what devices send -------------------------------------------------------------------

    def verify_device_message(self, data: bytes, device: str) -> tuple[Body, Payload]:
        ring = self._ring()
        envelope = parse(data, "device message")
        party = ring.devices.get(envelope.kid)
        if party is None or envelope.kid != device:
            raise SignatureError("device message.kid",
                                 f"{envelope.kid} is not device {device} of this family")
        body = verify(envelope, party.sign_key, Purpose.DEVICE, "device message")
        if body.family != ring.family or body.device != device:
            raise SignatureError("device message.body", "not from this family's device")
        return body, parse_payload(body)

    def verify_ack(self, data: bytes, device: str) -> Ack:
        body, payload = self.verify_device_message(data, device)
        if not isinstance(payload, Ack):
            raise ProtocolError("device message.type", f"{body.type.value} is not an ack")
        return payload

    def open_from_device(self, sealed: bytes | dict[str, Any], ctx: str, device: str) -> tuple[Body, Payload]:
        blob = sealed_from_json(loads(sealed, "sealed", 4 << 20) if isinstance(sealed, bytes) else sealed)
        inner = open_sealed(blob, ctx, self.identity.seal_key)
        body, payload = self.verify_device_message(inner, device)
        if not ctx.startswith(f"{body.type.value}/") or not ctx.endswith(
                body.id if body.type is MessageType.REQUEST else ctx.rsplit("/", 1)[-1]):
            raise ProtocolError("sealed.ctx", f"{ctx} does not match the {body.type.value} inside")
        return body, payload

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise ProtocolError("keyring", "pair a device first")
        return self.keyring


def _body(envelope: Envelope) -> Body:
    return parse_body(envelope.body_bytes)
