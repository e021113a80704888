"""Multi-recipient sealing: each recipient opens, nobody else, and only in its context."""

from __future__ import annotations

import pytest

from protocol.encoding import b64
from protocol.errors import ProtocolError, SealError
from protocol.keys import Identity
from protocol.sealing import Sealed, open_sealed, parse, seal

CTX = "guardian-message/" + "ab" * 16 + "/" + "cd" * 16 + "/" + "01" * 16


def test_every_recipient_opens_and_an_outsider_does_not() -> None:
    a, b, c = (Identity.generate(is_device=False) for _ in range(3))
    sealed = parse(seal(b"secret rules", CTX, [a.public.seal_key, b.public.seal_key]).encode())
    assert open_sealed(sealed, CTX, a.seal_key) == b"secret rules"
    assert open_sealed(sealed, CTX, b.seal_key) == b"secret rules"
    with pytest.raises(SealError, match="not sealed to this key"):
        open_sealed(sealed, CTX, c.seal_key)


def test_the_context_binds_the_blob() -> None:
    a = Identity.generate(is_device=False)
    sealed = seal(b"x", CTX, [a.public.seal_key])
    with pytest.raises(SealError, match="expected"):
        open_sealed(sealed, CTX.replace("01", "02"), a.seal_key)
    moved = Sealed(CTX.replace("01", "02"), sealed.wraps, sealed.nonce, sealed.ct)
    with pytest.raises(SealError):  # relabelled context: the wrap and the AEAD refuse it
        open_sealed(moved, moved.ctx, a.seal_key)


def test_tampering_with_ciphertext_wrap_or_nonce_is_caught() -> None:
    a = Identity.generate(is_device=False)
    sealed = seal(b"payload", CTX, [a.public.seal_key])
    to, key = sealed.wraps[0]
    for bad in (Sealed(CTX, sealed.wraps, sealed.nonce, bytes([sealed.ct[0] ^ 1]) + sealed.ct[1:]),
                Sealed(CTX, ((to, key[:-1] + bytes([key[-1] ^ 1])),), sealed.nonce, sealed.ct),
                Sealed(CTX, sealed.wraps, bytes(12), sealed.ct)):
        with pytest.raises(SealError):
            open_sealed(bad, CTX, a.seal_key)


def test_reader_refuses_malformed_blobs() -> None:
    a = Identity.generate(is_device=False)
    good = seal(b"x", CTX, [a.public.seal_key]).to_json()
    for bad, where in ((good | {"wraps": []}, "sealed.wraps"), (good | {"nonce": b64(b"short")}, "sealed.nonce"),
                       (good | {"ctx": "bad\nctx"}, "sealed.ctx"), (good | {"v": 9}, "sealed.v")):
        with pytest.raises(ProtocolError) as err:
            from protocol.sealing import sealed_from_json
            sealed_from_json(bad)
        assert err.value.where == where


def test_duplicate_recipients_are_wrapped_once_and_limits_hold() -> None:
    a = Identity.generate(is_device=False)
    assert len(seal(b"x", CTX, [a.public.seal_key, a.public.seal_key]).wraps) == 1
    with pytest.raises(ProtocolError):
        seal(b"x", CTX, [])
