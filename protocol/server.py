"""What the dashboard server signs, and what a device signs to log in to it (PROTOCOL.md §15).

The server has an Ed25519 key of its own, which the device pins at pairing. It signs only
two things, neither of which carries authority over the child: the current time (one more
source for the device's trusted clock, which moves only forward and within bounds) and a
deletion receipt ("the server deleted this child's data"). The device logs in by signing a
challenge bound to the server's public origin, so a relay cannot reuse the signature
against another server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.encoding import Fields, b64, dom, dumps, loads
from protocol.errors import ProtocolError, SignatureError

LOGIN_NONCE_BYTES = 32
TIME_NONCE_BYTES = 16
MAX_ORIGIN = 255
MAX_RECEIPT = 4096
RECEIPT_SCOPES = ("data", "unpair")
RECEIPT_KINDS = ("journal_records", "summaries", "requests", "catalogue", "messages")


def _origin(origin: str) -> bytes:
    if not 1 <= len(origin) <= MAX_ORIGIN or not origin.isascii() or "\x00" in origin:
        raise ProtocolError("origin", f"1..{MAX_ORIGIN} ASCII characters")
    return origin.encode("ascii")


def device_login_message(origin: str, nonce: bytes, device_id: str) -> bytes:
    """dom("device-login") || origin (ASCII) || 0x00 || nonce (32 bytes) || device id (ASCII hex)."""
    if len(nonce) != LOGIN_NONCE_BYTES:
        raise ProtocolError("nonce", f"{len(nonce)} bytes, expected {LOGIN_NONCE_BYTES}")
    return dom("device-login") + _origin(origin) + b"\x00" + nonce + device_id.encode("ascii")


def server_time_message(time: int, nonce: bytes) -> bytes:
    """dom("server-time") || u64(time) || the device's nonce (16 bytes)."""
    if len(nonce) != TIME_NONCE_BYTES:
        raise ProtocolError("nonce", f"{len(nonce)} bytes, expected {TIME_NONCE_BYTES}")
    return dom("server-time") + time.to_bytes(8, "big") + nonce


def verify_server_time(key: Ed25519PublicKey, time: int, nonce: bytes, signature: bytes) -> None:
    try:
        key.verify(signature, server_time_message(time, nonce))
    except InvalidSignature as exc:
        raise SignatureError("signature", "the server's time is not signed by the pinned server key") from exc


@dataclass(frozen=True)
class ServerReceipt:
    """The server's statement that it deleted a device's data (signed, not sealed)."""

    id: str  # hex 32, also the queue message id it travels under
    family: str
    device: str
    scope: str  # "data" (delete_data) or "unpair"
    decision: str | None  # the guardian's delete_data / unpair decision id, if known
    at: int
    deleted: dict[str, int]  # kind -> count

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "server-deletion",
            "id": self.id,
            "family": self.family,
            "device": self.device,
            "scope": self.scope,
            "decision": self.decision,
            "at": self.at,
            "deleted": self.deleted,
        }


def sign_receipt(receipt: ServerReceipt, key: Ed25519PrivateKey) -> dict[str, str]:
    """`{"body": b64(body), "sig": b64(Ed25519(dom("server-receipt") || body))}`."""
    body = dumps(receipt.to_json())
    return {"body": b64(body), "sig": b64(key.sign(dom("server-receipt") + body))}


def verify_receipt(value: object, key: Ed25519PublicKey, where: str = "receipt") -> ServerReceipt:
    f = Fields(value, where)
    body = f.bytes_("body", max_size=MAX_RECEIPT)
    sig = f.bytes_("sig", size=64)
    f.done()
    try:
        key.verify(sig, dom("server-receipt") + body)
    except InvalidSignature as exc:
        raise SignatureError(f"{where}.sig", "not signed by the pinned server key") from exc
    b = Fields(loads(body, f"{where}.body", MAX_RECEIPT), f"{where}.body")
    if b.choice("type", ("server-deletion",)) != "server-deletion":
        raise ProtocolError(b.at("type"), "not a deletion receipt")
    receipt_id, family, device = b.hex_("id"), b.hex_("family"), b.hex_("device")
    scope = b.choice("scope", RECEIPT_SCOPES)
    decision = b.hexid("decision", optional=True)
    at = b.int_("at")
    counts = b.obj("deleted")
    deleted = {k: counts.int_(k) for k in RECEIPT_KINDS if counts.has(k)}
    counts.done()
    b.done()
    return ServerReceipt(receipt_id, family, device, scope, decision, at, deleted)
