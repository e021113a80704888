"""What a device accepts from its guardians (PROTOCOL.md §3 "Acceptance"), as one pure
function of the message, the keyring, the replay state and the trusted time.

`accept` either returns the verified body and its typed payload or raises a
`ProtocolError` whose `where` and `problem` say why; the caller changes nothing on a
refusal and records it. Replay protection is by version for policies (strictly higher than
the one in force) and by id for everything else (an id is remembered until its message
expires, after which the expiry check refuses it anyway, so the memory stays bounded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from protocol.envelope import Body, Envelope, MessageType, Purpose, check_time, parse, verify
from protocol.errors import ProtocolError, SignatureError
from protocol.keyring import Keyring
from protocol.keys import Identity, PublicParty
from protocol.messages import Payload, parse_payload
from protocol.sealing import guardian_message_ctx, open_sealed
from protocol.sealing import parse as parse_sealed

GUARDIAN_TYPES = frozenset({MessageType.POLICY, MessageType.DECISION, MessageType.CONSENT})


@dataclass(frozen=True)
class ReplayState:
    """What the device remembers to refuse replays and downgrades."""

    policy_version: int = 0  # the version in force (0: only the factory default so far)
    used: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # id -> exp

    def after(self, body: Body, now: int) -> ReplayState:
        """The state once `body` has been applied (expired ids forgotten)."""
        used = {i: exp for i, exp in self.used.items() if exp > now}
        version = self.policy_version
        if body.type is MessageType.POLICY:
            version = body.seq
        used[body.id] = body.exp
        return ReplayState(version, MappingProxyType(used))


@dataclass(frozen=True)
class Accepted:
    body: Body
    payload: Payload
    signer: PublicParty


def accept(envelope: Envelope, keyring: Keyring, device_id: str, state: ReplayState, now: int,
           where: str = "message") -> Accepted:
    signer = keyring.guardians.get(envelope.kid)
    if signer is None:
        raise SignatureError(f"{where}.kid", f"{envelope.kid} is not an active guardian of family "
                             f"{keyring.family}")
    body = verify(envelope, signer.sign_key, Purpose.GUARDIAN, where)
    if body.type not in GUARDIAN_TYPES:
        raise ProtocolError(f"{where}.body.type", f"a device does not accept {body.type.value} messages")
    if body.family != keyring.family:
        raise SignatureError(f"{where}.body.family", f"{body.family} is not this device's family")
    if body.device != device_id:
        raise SignatureError(f"{where}.body.device",
                             f"addressed to device {body.device}, this is {device_id}")
    check_time(body, now, f"{where}.body")
    if body.id in state.used:
        raise ProtocolError(f"{where}.body.id", f"message {body.id} was applied before (a replay)")
    if body.type is MessageType.POLICY and body.seq <= state.policy_version:
        raise ProtocolError(f"{where}.body.seq", f"policy version {body.seq} is not newer than the "
                            f"version in force, {state.policy_version}")
    payload = parse_payload(body, f"{where}.body.payload")
    return Accepted(body, payload, signer)


def open_guardian_message(sealed: bytes, message_id: str, device: Identity, keyring: Keyring,
                          state: ReplayState, now: int) -> Accepted:
    """Open a sealed guardian message from the device's queue and accept it; the inner id
    must be the id it was queued under (the context binds the two)."""
    blob = parse_sealed(sealed, "sealed")
    ctx = guardian_message_ctx(keyring.family, device.id, message_id)
    envelope = parse(open_sealed(blob, ctx, device.seal_key), "message")
    accepted = accept(envelope, keyring, device.id, state, now)
    if accepted.body.id != message_id:
        raise ProtocolError("message.body.id", f"{accepted.body.id} was queued as {message_id}")
    return accepted
