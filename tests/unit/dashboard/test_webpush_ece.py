"""RFC 8291 message encryption: the server's encrypt against the receiver's decrypt, and
the example of RFC 8291 Appendix A (fixed keys and salt: the exact bytes must come out)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from dashboard.webpush.ece import PushDecryptError, decrypt, encrypt
from protocol.encoding import b64, unb64


def _private(b64_scalar: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64(b64_scalar, "k"), "big"), ec.SECP256R1())


def test_rfc8291_appendix_a() -> None:
    ua_private = _private("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")
    as_private = _private("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")
    ua_public = unb64(
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "p", 65
    )
    auth = unb64("BTBZMqHH6r4Tts7J_aSIgg", "a", 16)
    salt = unb64("DGv6ra1nlYgDCS1FRnbzlw", "s", 16)
    plaintext = b"When I grow up, I want to be a watermelon"
    body = encrypt(plaintext, ua_public, auth, salt=salt, sender_key=as_private)
    want = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    assert b64(body) == want
    assert decrypt(body, ua_private, auth) == plaintext


def test_roundtrip_and_tamper() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization

    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)
    body = encrypt(b'{"type":"request"}', public, auth)
    assert decrypt(body, key, auth) == b'{"type":"request"}'
    with pytest.raises(PushDecryptError):
        decrypt(body, key, os.urandom(16))
    with pytest.raises(PushDecryptError):
        decrypt(body[:-1] + bytes([body[-1] ^ 1]), key, auth)
    with pytest.raises(ValueError):
        encrypt(bytes(4000), public, auth)
