"""Web Push message encryption (RFC 8291, "aes128gcm" content coding of RFC 8188) and the
VAPID authorisation header (RFC 8292), with `cryptography` alone.

`encrypt` is what the server sends; `decrypt` is what a browser's push service worker does,
kept here so the tests' mock push service can check every byte the server sends.
"""

from __future__ import annotations

import json
import os
import struct
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from protocol.encoding import b64

RECORD_SIZE = 4096
KEY_INFO = b"WebPush: info\x00"
CEK_INFO = b"Content-Encoding: aes128gcm\x00"
NONCE_INFO = b"Content-Encoding: nonce\x00"


class PushDecryptError(ValueError):
    pass


def _hmac(key: bytes, data: bytes) -> bytes:
    h = HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def _public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _keys(ecdh: bytes, auth: bytes, ua_public: bytes, as_public: bytes, salt: bytes) -> tuple[bytes, bytes]:
    prk_key = _hmac(auth, ecdh)
    ikm = _hmac(prk_key, KEY_INFO + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    return _hmac(prk, CEK_INFO + b"\x01")[:16], _hmac(prk, NONCE_INFO + b"\x01")[:12]


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth: bytes,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """One aes128gcm record for the subscription's p256dh key and auth secret."""
    if len(plaintext) > RECORD_SIZE - 17 - 103:
        raise ValueError("a push message is at most 3,976 bytes")
    salt = salt or os.urandom(16)
    sender = sender_key or ec.generate_private_key(ec.SECP256R1())
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    as_public = _public_bytes(sender.public_key())
    cek, nonce = _keys(sender.exchange(ec.ECDH(), peer), auth, ua_public, as_public, salt)
    body = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + struct.pack(">IB", RECORD_SIZE, len(as_public)) + as_public + body


def decrypt(message: bytes, ua_private: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    if len(message) < 21:
        raise PushDecryptError("shorter than the aes128gcm header")
    salt, (rs, idlen) = message[:16], struct.unpack(">IB", message[16:21])
    as_public = message[21 : 21 + idlen]
    body = message[21 + idlen :]
    if rs < 18 or len(body) > rs:
        raise PushDecryptError("one record of at most rs bytes expected")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    except ValueError as exc:
        raise PushDecryptError("the keyid is not a P-256 public key") from exc
    ua_public = _public_bytes(ua_private.public_key())
    cek, nonce = _keys(ua_private.exchange(ec.ECDH(), peer), auth, ua_public, as_public, salt)
    try:
        padded = AESGCM(cek).decrypt(nonce, body, None)
    except Exception as exc:
        raise PushDecryptError("the record does not open") from exc
    stripped = padded.rstrip(b"\x00")
    if not stripped.endswith(b"\x02"):
        raise PushDecryptError("no last-record delimiter")
    return stripped[:-1]


def vapid_header(key: ec.EllipticCurvePrivateKey, endpoint: str, subject: str, now: int) -> str:
    """`vapid t=<JWT ES256>, k=<public key>` for the endpoint's origin (RFC 8292 §3)."""
    parts = urlsplit(endpoint)
    claims = {"aud": f"{parts.scheme}://{parts.netloc}", "exp": now + 12 * 3600, "sub": subject}
    header = b64(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"vapid t={header}.{payload}.{signature}, k={b64(_public_bytes(key.public_key()))}"
