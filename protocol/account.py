"""Guardian account key derivation and key wrapping (PROTOCOL.md §13), as the browser does it.

The reference guardian client and the dashboard's tests sign up and log in through these
functions; the web app implements the same with WebCrypto and passes the same vectors. The
server only ever sees `auth_key` (which it hashes again) and the wrapped bundles.
"""

from __future__ import annotations

import base64
import hashlib
import os
import unicodedata
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.encoding import Fields, b64, dom, dumps, loads
from protocol.errors import ProtocolError, SealError
from protocol.keys import Identity

PBKDF2_ITERATIONS = 600_000
MIN_PBKDF2_ITERATIONS = 100_000
SALT_BYTES = 16
RECOVERY_BYTES = 32


@dataclass(frozen=True)
class KdfParams:
    alg: str  # "pbkdf2-sha256" (Argon2id is derived in the browser only; see PROTOCOL.md)
    iterations: int
    salt: bytes

    def to_json(self) -> dict[str, Any]:
        return {"alg": self.alg, "iterations": self.iterations, "salt": b64(self.salt)}

    @classmethod
    def from_json(cls, value: object, where: str = "kdf") -> KdfParams:
        f = Fields(value, where)
        alg = f.choice("alg", ("pbkdf2-sha256",))
        params = cls(alg, f.int_("iterations", low=MIN_PBKDF2_ITERATIONS, high=10_000_000),
                     f.bytes_("salt", size=SALT_BYTES))
        f.done()
        return params

    @classmethod
    def new(cls, iterations: int = PBKDF2_ITERATIONS) -> KdfParams:
        return cls("pbkdf2-sha256", iterations, os.urandom(SALT_BYTES))


def hkdf(ikm: bytes, name: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=dom(name)).derive(ikm)


def master_key(password: str, params: KdfParams) -> bytes:
    text = unicodedata.normalize("NFKC", password).encode()
    return hashlib.pbkdf2_hmac("sha256", text, params.salt, params.iterations, 32)


@dataclass(frozen=True)
class AccountKeys:
    auth: bytes  # sent to the server
    wrap: bytes  # never leaves the guardian's device


def derive(password: str, params: KdfParams) -> AccountKeys:
    master = master_key(password, params)
    return AccountKeys(hkdf(master, "account-auth"), hkdf(master, "account-wrap"))


def new_recovery_key() -> bytes:
    return os.urandom(RECOVERY_BYTES)


def format_recovery_key(key: bytes) -> str:
    text = base64.b32encode(key).decode().rstrip("=")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def parse_recovery_key(text: str) -> bytes:
    clean = "".join(text.split()).replace("-", "").upper()
    try:
        key = base64.b32decode(clean + "=" * (-len(clean) % 8))
    except ValueError as exc:
        raise ProtocolError("recovery_key", "not a recovery key (52 letters and digits)") from exc
    if len(key) != RECOVERY_BYTES:
        raise ProtocolError("recovery_key", "not a recovery key (52 letters and digits)")
    return key


def recovery_auth(recovery: bytes) -> bytes:
    return hkdf(recovery, "account-recovery-auth")


def recovery_wrap(recovery: bytes) -> bytes:
    return hkdf(recovery, "account-recovery-wrap")


def _pkcs8(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def wrap_identity(identity: Identity, key: bytes) -> dict[str, str]:
    bundle = dumps({"v": 1, "sign": b64(_pkcs8(identity.sign_key)), "seal": b64(_pkcs8(identity.seal_key))})
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, bundle, dom("account-keys") + identity.id.encode())
    return {"nonce": b64(nonce), "ct": b64(ct)}


def unwrap_identity(wrapped: object, key: bytes, kid: str, label: str = "") -> Identity:
    f = Fields(wrapped, "wrapped_keys")
    nonce, ct = f.bytes_("nonce", size=12), f.bytes_("ct", max_size=4096)
    f.done()
    try:
        bundle = AESGCM(key).decrypt(nonce, ct, dom("account-keys") + kid.encode())
    except InvalidTag as exc:
        raise SealError("wrapped_keys", "does not open with this key (wrong password?)") from exc
    b = Fields(loads(bundle, "key bundle", 4096), "key bundle")
    if b.int_("v") != 1:
        raise ProtocolError("key bundle.v", "unknown version")
    sign = serialization.load_der_private_key(b.bytes_("sign", max_size=256), None)
    seal = serialization.load_der_private_key(b.bytes_("seal", max_size=256), None)
    b.done()
    if not isinstance(sign, Ed25519PrivateKey) or not isinstance(seal, X25519PrivateKey):
        raise ProtocolError("key bundle", "not an Ed25519 and an X25519 key")
    identity = Identity(sign, seal, is_device=False, label=label)
    if identity.id != kid:
        raise ProtocolError("key bundle", f"holds the keys of {identity.id}, not {kid}")
    return identity
