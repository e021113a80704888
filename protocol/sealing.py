"""Multi-recipient sealing (PROTOCOL.md §9): one AES-256-GCM ciphertext, its key wrapped with
HPKE to each recipient's X25519 key, bound to a context string the opener must expect.

Same suite as the journal's segment keys, so the browser needs one HPKE configuration for
everything: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, all native in WebCrypto.
The context names what the blob is and which ids its inner message carries, so a sealed
policy for one device cannot be presented as another's, nor a request as a summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.encoding import Fields, b64, dom, dumps, loads, unhex
from protocol.errors import ProtocolError, SealError
from protocol.keys import raw_public

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
SEALED_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
WRAP_BYTES = 32 + KEY_BYTES + 16  # enc || ciphertext of the key || tag
MAX_RECIPIENTS = 64
MAX_PLAINTEXT = 1_048_576
MAX_CONTEXT = 200


def _label(ctx: str) -> bytes:
    return dom("seal") + ctx.encode("ascii")


@dataclass(frozen=True)
class Sealed:
    ctx: str
    wraps: tuple[tuple[str, bytes], ...]  # (recipient public key hex, enc || wrapped key)
    nonce: bytes
    ct: bytes

    @property
    def recipients(self) -> list[str]:
        return [to for to, _ in self.wraps]

    def to_json(self) -> dict[str, Any]:
        return {"v": SEALED_VERSION, "ctx": self.ctx,
                "wraps": [{"to": to, "key": b64(key)} for to, key in self.wraps],
                "nonce": b64(self.nonce), "ct": b64(self.ct)}

    def encode(self) -> bytes:
        return dumps(self.to_json())


def _check_ctx(ctx: str, where: str) -> None:
    if not isinstance(ctx, str) or not 1 <= len(ctx) <= MAX_CONTEXT or not ctx.isascii() \
            or not ctx.isprintable():
        raise ProtocolError(where, f"a context is 1..{MAX_CONTEXT} printable ASCII characters")


def seal(plaintext: bytes, ctx: str, recipients: Iterable[X25519PublicKey]) -> Sealed:
    _check_ctx(ctx, "ctx")
    keys = list(recipients)
    if not 1 <= len(keys) <= MAX_RECIPIENTS:
        raise ProtocolError("recipients", f"{len(keys)}; expected 1..{MAX_RECIPIENTS}")
    if len(plaintext) > MAX_PLAINTEXT:
        raise ProtocolError("plaintext", f"{len(plaintext)} bytes, at most {MAX_PLAINTEXT}")
    content_key = os.urandom(KEY_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    label = _label(ctx)
    ct = AESGCM(content_key).encrypt(nonce, plaintext, label)
    wraps = []
    seen = set()
    for key in keys:
        to = raw_public(key).hex()
        if to in seen:
            continue
        seen.add(to)
        wraps.append((to, SUITE.encrypt(content_key, key, info=label)))
    return Sealed(ctx, tuple(wraps), nonce, ct)


def sealed_from_json(value: object, where: str = "sealed") -> Sealed:
    f = Fields(value, where)
    if f.int_("v") != SEALED_VERSION:
        raise ProtocolError(f.at("v"), f"version is not {SEALED_VERSION}")
    ctx = f.raw("ctx")
    _check_ctx(ctx, f.at("ctx"))
    wraps = []
    for i, w in enumerate(f.array("wraps", max_items=MAX_RECIPIENTS)):
        wf = Fields(w, f"{f.at('wraps')}[{i}]")
        to = wf.raw("to")
        unhex(to, wf.at("to"), 32)
        wraps.append((str(to), wf.bytes_("key", size=WRAP_BYTES)))
        wf.done()
    if not wraps:
        raise ProtocolError(f.at("wraps"), "no recipients")
    nonce = f.bytes_("nonce", size=NONCE_BYTES)
    ct = f.bytes_("ct", max_size=MAX_PLAINTEXT + 16)
    f.done()
    return Sealed(str(ctx), tuple(wraps), nonce, ct)


def parse(data: bytes, where: str = "sealed") -> Sealed:
    return sealed_from_json(loads(data, where, 2 * MAX_PLAINTEXT), where)


def open_sealed(sealed: Sealed, expected_ctx: str, private_key: X25519PrivateKey) -> bytes:
    """The plaintext, if `sealed` is for this key and this context; SealError otherwise."""
    if sealed.ctx != expected_ctx:
        raise SealError("sealed.ctx", f"{sealed.ctx!r} is not the expected {expected_ctx!r}")
    me = raw_public(private_key.public_key()).hex()
    wrapped = next((key for to, key in sealed.wraps if to == me), None)
    if wrapped is None:
        raise SealError("sealed.wraps", "not sealed to this key")
    label = _label(sealed.ctx)
    try:
        content_key = SUITE.decrypt(wrapped, private_key, info=label)
    except (InvalidTag, ValueError) as exc:
        raise SealError("sealed.wraps", "the key wrap does not open (tampered or another context)") from exc
    if len(content_key) != KEY_BYTES:
        raise SealError("sealed.wraps", "the wrapped key has the wrong size")
    try:
        return AESGCM(content_key).decrypt(sealed.nonce, sealed.ct, label)
    except InvalidTag as exc:
        raise SealError("sealed.ct", "does not open (tampered)") from exc


def guardian_message_ctx(family: str, device: str, message_id: str) -> str:
    return f"guardian-message/{family}/{device}/{message_id}"


def request_ctx(family: str, device: str, message_id: str) -> str:
    return f"request/{family}/{device}/{message_id}"


def summary_ctx(family: str, device: str, day: str) -> str:
    return f"summary/{family}/{device}/{day}"


def catalogue_ctx(family: str, device: str) -> str:
    return f"catalogue/{family}/{device}"
