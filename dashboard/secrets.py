"""The server's own keys, made once and kept in the database (so every process of a
deployment shares them): the Ed25519 key that signs time and deletion receipts, the key
that MACs device tokens, the key that makes stable decoy KDF parameters for unknown e-mail
addresses, and the VAPID key for Web Push.

None of them opens a child's data or signs anything a device obeys: a stolen database
gives an attacker what the server already is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dashboard.db.engine import Database
from dashboard.db.schema import server_secrets
from protocol.keys import raw_public


@dataclass(frozen=True)
class ServerSecrets:
    signing_key: Ed25519PrivateKey
    token_key: bytes
    decoy_key: bytes
    vapid_key: ec.EllipticCurvePrivateKey

    @property
    def signing_public(self) -> bytes:
        return raw_public(self.signing_key.public_key())

    @property
    def vapid_public(self) -> bytes:
        return self.vapid_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )


def _new(name: str) -> bytes:
    if name == "signing_key":
        return Ed25519PrivateKey.generate().private_bytes_raw()
    if name == "vapid_key":
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return os.urandom(32)


NAMES = ("signing_key", "token_key", "decoy_key", "vapid_key")


def load_or_create(db: Database) -> ServerSecrets:
    """Read the secrets, making any that is missing (the first process to start wins)."""
    values: dict[str, bytes] = {}
    for name in NAMES:
        with db.read() as conn:
            row = conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == name)).first()
        if row is None:
            try:
                with db.write() as conn:
                    conn.execute(server_secrets.insert().values(name=name, value=_new(name)))
            except IntegrityError:
                pass  # another process made it first
            with db.read() as conn:
                row = conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == name)).one()
        values[name] = bytes(row[0])
    vapid = serialization.load_der_private_key(values["vapid_key"], None)
    assert isinstance(vapid, ec.EllipticCurvePrivateKey)
    return ServerSecrets(
        Ed25519PrivateKey.from_private_bytes(values["signing_key"]),
        values["token_key"],
        values["decoy_key"],
        vapid,
    )
