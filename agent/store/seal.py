"""Sealing journal segments for the guardian: HPKE key wrap + AES-256-GCM records.

Each segment gets a fresh random 256-bit key. The key is wrapped with HPKE (RFC 9180,
base mode) to every recipient's X25519 public key; records are sealed under it with
AES-256-GCM and a random 96-bit nonce. The device keeps the segment key in memory only
and drops it when the segment closes, so a stolen device cannot read its own past logs.

Suite: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM (RFC 9180 ids 0x0020,
0x0001, 0x0001). Why: the guardian opens segments in a browser. WebCrypto has X25519
(Chrome 133+, Firefox 130+, Safari 17+), HKDF-SHA256 and AES-GCM but no ChaCha20-Poly1305,
so every primitive of this suite runs natively there (or in a vetted JS HPKE library such
as hpke-js). This is also the suite RFC 9180 lists first and the one most implementations
test against. HPKE only protects a 32-byte key, so AES-128 costs nothing in strength that
matters here; the records themselves use AES-256-GCM, also native in WebCrypto.

`info` binds a wrapped key to its segment's uid, so a wrap cannot be moved to another
segment; the record AEAD's associated data binds a ciphertext to its segment and seq.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.store.identity import write_private
from agent.store.recovery import set_aside

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
SUITE_NAME = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-128-GCM"
RECORD_AEAD = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
_INFO_PREFIX = b"minormode/journal/segment-key/v1/"


class SealError(ValueError):
    """A wrapped key or record that does not open with the key given (wrong key or tampered)."""


def _info(segment_uid: str) -> bytes:
    return _INFO_PREFIX + segment_uid.encode()


def new_segment_key() -> bytes:
    return os.urandom(KEY_BYTES)


def wrap_key(segment_key: bytes, recipient: X25519PublicKey, segment_uid: str) -> bytes:
    """HPKE-seal the segment key to one recipient: enc (32 bytes) || ciphertext."""
    return SUITE.encrypt(segment_key, recipient, info=_info(segment_uid))


def unwrap_key(wrapped: bytes, private_key: X25519PrivateKey, segment_uid: str) -> bytes:
    try:
        key = SUITE.decrypt(wrapped, private_key, info=_info(segment_uid))
    except (InvalidTag, ValueError) as exc:
        raise SealError(f"segment {segment_uid}: key wrap does not open with this key") from exc
    if len(key) != KEY_BYTES:
        raise SealError(f"segment {segment_uid}: unwrapped key has {len(key)} bytes")
    return key


def record_aad(segment_uid: str, seq: int) -> bytes:
    """segment uid (ASCII hex) || seq (8 bytes, big-endian)."""
    return segment_uid.encode() + seq.to_bytes(8, "big")


def seal_record(
    aead: AESGCM, segment_uid: str, seq: int, plaintext: bytes, nonce: bytes | None = None
) -> tuple[bytes, bytes]:
    """Return (nonce, ciphertext||tag). `nonce` must be fresh random bytes when given (a
    batch draws all its nonces in one read); never derived from seq, which a truncated
    database could make repeat under a still-open segment key."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
    return nonce, aead.encrypt(nonce, plaintext, record_aad(segment_uid, seq))


def seal_batch(
    aead: AESGCM, segment_uid: str, first_seq: int, plaintexts: list[bytes]
) -> list[tuple[bytes, bytes]]:
    """`seal_record` for consecutive seqs, drawing every nonce in one read."""
    uid = segment_uid.encode()
    randomness = os.urandom(NONCE_BYTES * len(plaintexts))
    out = []
    for i, pt in enumerate(plaintexts):
        nonce = randomness[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
        out.append((nonce, aead.encrypt(nonce, pt, uid + (first_seq + i).to_bytes(8, "big"))))
    return out


def open_record(
    aead: AESGCM, segment_uid: str, seq: int, nonce: bytes, ciphertext: bytes
) -> bytes:
    try:
        return aead.decrypt(nonce, ciphertext, record_aad(segment_uid, seq))
    except InvalidTag as exc:
        raise SealError(f"record {seq}: does not open (tampered or wrong segment)") from exc


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def recipient_id(key: X25519PublicKey) -> str:
    """The recipient's raw public key in hex: public, and what a guardian can recognise."""
    return public_bytes(key).hex()


def public_key_from_hex(text: str) -> X25519PublicKey:
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"guardian public key {text!r} is not hex") from exc
    if len(raw) != 32:
        raise ValueError(f"guardian public key has {len(raw)} bytes, expected 32")
    return X25519PublicKey.from_public_bytes(raw)


# Key files: PEM PKCS#8 (private) so standard tools read them; written 0600 atomically.


def write_private_key(path: Path, key: X25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)


def load_private_key(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path}: not an X25519 private key")
    return key


def ensure_local_key(path: Path) -> X25519PrivateKey:
    """The device-local sealing key used before pairing; root-only file, made once (again
    if damaged: set aside first, `agent.store.recovery`; segments sealed to it are lost)."""
    if path.exists():
        try:
            return load_private_key(path)
        except ValueError as exc:
            set_aside(path, str(exc))
    key = X25519PrivateKey.generate()
    write_private_key(path, key)
    return key
