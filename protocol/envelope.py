"""The signed envelope (PROTOCOL.md §3): exact body bytes, an Ed25519 signature over a
purpose-specific domain string and them, and the signer's id.

`sign` makes one; `parse` reads the outer JSON without trusting anything; `verify` checks
the signature over the bytes as received and only then parses the body. Nothing here
decides whether a signer may sign: the keyring and `protocol.accept` do that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.encoding import MAX_INT, Fields, b64, dom, dumps, loads
from protocol.errors import ProtocolError, SignatureError

ENVELOPE_VERSION = 1
MAX_BODY = 262_144
MAX_ENVELOPE = 360_000
SIGNATURE_BYTES = 64
FUTURE_TOLERANCE = 600  # seconds an `iat` may lie ahead of the reader's clock


class Purpose(StrEnum):
    KEYRING = "keyring"
    GUARDIAN = "guardian-message"
    DEVICE = "device-message"


class MessageType(StrEnum):
    KEYRING = "keyring"
    POLICY = "policy"
    DECISION = "decision"
    CONSENT = "consent"
    ACK = "ack"
    REQUEST = "request"
    SUMMARY = "summary"
    RECEIPT = "receipt"
    CATALOGUE = "catalogue"
    PAIRED = "paired"


DAY = 86_400
PURPOSE: dict[MessageType, Purpose] = {
    MessageType.KEYRING: Purpose.KEYRING,
    MessageType.POLICY: Purpose.GUARDIAN,
    MessageType.DECISION: Purpose.GUARDIAN,
    MessageType.CONSENT: Purpose.GUARDIAN,
    MessageType.ACK: Purpose.DEVICE,
    MessageType.REQUEST: Purpose.DEVICE,
    MessageType.SUMMARY: Purpose.DEVICE,
    MessageType.RECEIPT: Purpose.DEVICE,
    MessageType.CATALOGUE: Purpose.DEVICE,
    MessageType.PAIRED: Purpose.DEVICE,
}
MAX_LIFETIME: dict[MessageType, int] = {
    MessageType.KEYRING: 36_525 * DAY,
    MessageType.POLICY: 30 * DAY,
    MessageType.DECISION: 8 * DAY,
    MessageType.CONSENT: 30 * DAY,
} | {t: 30 * DAY for t, p in PURPOSE.items() if p is Purpose.DEVICE}


def new_id() -> str:
    """A fresh 128-bit message id, hex."""
    return os.urandom(16).hex()


@dataclass(frozen=True)
class Body:
    """The signed content of an envelope."""

    type: MessageType
    family: str
    device: str  # "" for keyring entries
    id: str
    seq: int
    iat: int
    exp: int
    kid: str
    payload: dict[str, Any] = field(hash=False)

    @property
    def purpose(self) -> Purpose:
        return PURPOSE[self.type]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type.value, "family": self.family, "device": self.device,
                "id": self.id, "seq": self.seq, "iat": self.iat, "exp": self.exp,
                "kid": self.kid, "payload": self.payload}


@dataclass(frozen=True)
class Envelope:
    """An envelope as received: `body_bytes` are what the signature covers."""

    kid: str
    body_bytes: bytes
    sig: bytes

    def to_json(self) -> dict[str, Any]:
        return {"v": ENVELOPE_VERSION, "kid": self.kid, "body": b64(self.body_bytes), "sig": b64(self.sig)}

    def encode(self) -> bytes:
        return dumps(self.to_json())


def signing_input(purpose: Purpose, body_bytes: bytes) -> bytes:
    return dom(purpose.value) + body_bytes


def sign(body: Body, key: Ed25519PrivateKey) -> Envelope:
    """Serialise `body` once and sign those bytes; they travel as they are."""
    check_body_fields(body)
    body_bytes = dumps(body.to_json())
    if len(body_bytes) > MAX_BODY:
        raise ProtocolError("body", f"{len(body_bytes)} bytes, at most {MAX_BODY} allowed")
    return Envelope(body.kid, body_bytes, key.sign(signing_input(body.purpose, body_bytes)))


def envelope_from_json(value: object, where: str = "envelope") -> Envelope:
    f = Fields(value, where)
    if f.int_("v", high=MAX_INT) != ENVELOPE_VERSION:
        raise ProtocolError(f.at("v"), f"version {f.value['v']} is not {ENVELOPE_VERSION}")
    kid = f.hex_("kid")
    body_bytes = f.bytes_("body", max_size=MAX_BODY)
    sig = f.bytes_("sig", size=SIGNATURE_BYTES)
    f.done()
    return Envelope(kid, body_bytes, sig)


def parse(data: bytes, where: str = "envelope") -> Envelope:
    """The outer JSON only: nothing in it is trusted until `verify`."""
    return envelope_from_json(loads(data, where, MAX_ENVELOPE), where)


def parse_body(body_bytes: bytes, where: str = "body") -> Body:
    f = Fields(loads(body_bytes, where, MAX_BODY), where)
    kind = f.choice("type", tuple(t.value for t in MessageType))
    body = Body(
        type=MessageType(kind),
        family=f.hex_("family"),
        device=_device_field(f),
        id=f.hex_("id"),
        seq=f.int_("seq"),
        iat=f.int_("iat"),
        exp=f.int_("exp"),
        kid=f.hex_("kid"),
        payload=dict(f.obj("payload").value),
    )
    f.done()
    check_body_fields(body, where)
    return body


def _device_field(f: Fields) -> str:
    value = f.raw("device")
    if value == "":
        return ""
    return f.hex_("device")


def check_body_fields(body: Body, where: str = "body") -> None:
    """The rules every body obeys whatever its type (lifetimes, the family-wide keyring)."""
    if (body.type is MessageType.KEYRING) != (body.device == ""):
        raise ProtocolError(f"{where}.device", "empty for keyring entries and only for them")
    if not body.iat < body.exp:
        raise ProtocolError(f"{where}.exp", f"{body.exp} is not after iat {body.iat}")
    if body.exp - body.iat > MAX_LIFETIME[body.type]:
        raise ProtocolError(f"{where}.exp", f"lifetime {body.exp - body.iat} s exceeds the "
                            f"{MAX_LIFETIME[body.type]} s allowed for {body.type.value}")


def verify(envelope: Envelope, signer: Ed25519PublicKey, purpose: Purpose,
           where: str = "envelope") -> Body:
    """Check the signature over the received bytes under `purpose`'s domain string, then
    parse the body and check that its type belongs to that purpose (a policy signed as a
    device message is refused)."""
    try:
        signer.verify(envelope.sig, signing_input(purpose, envelope.body_bytes))
    except InvalidSignature as exc:
        raise SignatureError(f"{where}.sig", f"does not verify for signer {envelope.kid} "
                             f"as a {purpose.value}") from exc
    body = parse_body(envelope.body_bytes, f"{where}.body")
    if body.kid != envelope.kid:
        raise SignatureError(f"{where}.kid", f"envelope says {envelope.kid}, body says {body.kid}")
    if body.purpose is not purpose:
        raise SignatureError(f"{where}.body.type", f"a {body.type.value} is not a {purpose.value}")
    return body


def check_time(body: Body, now: int, where: str = "body") -> None:
    """Fresh enough for a reader whose clock says `now` (PROTOCOL.md §3)."""
    if body.iat > now + FUTURE_TOLERANCE:
        raise ProtocolError(f"{where}.iat", f"issued {body.iat - now} s in the future "
                            "(is this device's clock behind?)")
    if now >= body.exp:
        raise ProtocolError(f"{where}.exp", f"expired {now - body.exp} s ago")
