"""Public key bundles and the identifiers derived from them (PROTOCOL.md §2).

A party is two keys: Ed25519 to sign, X25519 to be sealed to. Their ids hash both keys, so
an id that reached a phone outside the server (a QR code) pins both. `DeviceKeys` and
`GuardianKeys` are the private halves; they exist on the device and in tests and the
reference guardian client (the web app keeps its private keys in the browser).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol.encoding import Fields, dom, unhex
from protocol.errors import ProtocolError

MAX_LABEL = 64


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def device_id(sign: bytes, seal: bytes) -> str:
    return hashlib.sha256(dom("device-id") + sign + seal).digest()[:16].hex()


def guardian_kid(sign: bytes, seal: bytes) -> str:
    return hashlib.sha256(dom("guardian-key") + sign + seal).digest()[:16].hex()


@dataclass(frozen=True)
class PublicParty:
    """A guardian's or a device's public keys, as the keyring and pairing carry them."""

    id: str  # guardian key id or device id
    sign: bytes  # Ed25519, raw 32 bytes
    seal: bytes  # X25519, raw 32 bytes
    label: str = ""

    @property
    def sign_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.sign)

    @property
    def seal_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.seal)

    @property
    def seal_hex(self) -> str:
        return self.seal.hex()

    def same_keys(self, other: PublicParty) -> bool:
        return (self.id, self.sign, self.seal) == (other.id, other.sign, other.seal)


def guardian_public(sign: bytes, seal: bytes, label: str = "") -> PublicParty:
    return PublicParty(guardian_kid(sign, seal), sign, seal, label)


def device_public(sign: bytes, seal: bytes, label: str = "") -> PublicParty:
    return PublicParty(device_id(sign, seal), sign, seal, label)


def party_to_json(party: PublicParty, id_key: str) -> dict[str, Any]:
    return {id_key: party.id, "sign": party.sign.hex(), "seal": party.seal.hex(), "label": party.label}


def party_from_json(value: object, where: str, id_key: str) -> PublicParty:
    """Read `{id_key, sign, seal, label}`; the id must be the hash of the two keys."""
    f = Fields(value, where)
    ident = f.hex_(id_key)
    sign = unhex(f.raw("sign"), f.at("sign"), 32)
    seal = unhex(f.raw("seal"), f.at("seal"), 32)
    label = f.text("label", max_len=MAX_LABEL)
    f.done()
    derive = device_id if id_key == "id" else guardian_kid
    if derive(sign, seal) != ident:
        raise ProtocolError(f.at(id_key), "does not match the keys it names")
    try:
        Ed25519PublicKey.from_public_bytes(sign)
        X25519PublicKey.from_public_bytes(seal)
    except ValueError as exc:
        raise ProtocolError(where, f"not a valid public key ({exc})") from exc
    return PublicParty(ident, sign, seal, label)


@dataclass(frozen=True)
class Identity:
    """A party's private keys (device, or a guardian in tests and the reference client)."""

    sign_key: Ed25519PrivateKey
    seal_key: X25519PrivateKey
    is_device: bool
    label: str = ""

    @classmethod
    def generate(cls, *, is_device: bool, label: str = "") -> Identity:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), is_device, label)

    @classmethod
    def from_seed(cls, seed: bytes, *, is_device: bool, label: str = "") -> Identity:
        """Deterministic keys for known-answer vectors: Ed25519 from `H(seed || "sign")`,
        X25519 from `H(seed || "seal")` (never for real keys)."""
        return cls(
            Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed + b"sign").digest()),
            X25519PrivateKey.from_private_bytes(hashlib.sha256(seed + b"seal").digest()),
            is_device,
            label,
        )

    @property
    def public(self) -> PublicParty:
        sign, seal = raw_public(self.sign_key.public_key()), raw_public(self.seal_key.public_key())
        make = device_public if self.is_device else guardian_public
        return make(sign, seal, self.label)

    @property
    def id(self) -> str:
        return self.public.id
