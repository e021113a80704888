"""Signed envelopes: the exact bytes signed are the bytes read, under one purpose each."""

from __future__ import annotations

import pytest

from protocol.encoding import b64, dumps
from protocol.envelope import (
    Body,
    Envelope,
    MessageType,
    Purpose,
    check_time,
    parse,
    parse_body,
    sign,
    verify,
)
from protocol.errors import ProtocolError, SignatureError
from protocol.keys import Identity

NOW = 1_796_000_000


def _body(signer: Identity, **changes: object) -> Body:
    fields: dict[str, object] = dict(type=MessageType.DECISION, family="ab" * 16, device="cd" * 16,
                                     id="01" * 16, seq=0, iat=NOW, exp=NOW + 3600, kid=signer.id,
                                     payload={"kind": "grant_time", "minutes": 15, "request_id": None})
    fields.update(changes)
    return Body(**fields)  # type: ignore[arg-type]


def test_sign_then_verify_returns_the_body_and_travels_as_json() -> None:
    g = Identity.generate(is_device=False)
    env = sign(_body(g), g.sign_key)
    again = parse(env.encode())
    assert again == env
    body = verify(again, g.public.sign_key, Purpose.GUARDIAN)
    assert body.payload["minutes"] == 15 and body.kid == g.id


def test_every_single_byte_change_of_body_or_signature_is_refused() -> None:
    g = Identity.generate(is_device=False)
    env = sign(_body(g), g.sign_key)
    for i in range(len(env.body_bytes)):
        changed = bytearray(env.body_bytes)
        changed[i] ^= 0x01
        with pytest.raises(ProtocolError):
            verify(Envelope(env.kid, bytes(changed), env.sig), g.public.sign_key, Purpose.GUARDIAN)
    for i in range(len(env.sig)):
        sig = bytearray(env.sig)
        sig[i] ^= 0x80
        with pytest.raises(SignatureError):
            verify(Envelope(env.kid, env.body_bytes, bytes(sig)), g.public.sign_key, Purpose.GUARDIAN)


def test_a_signature_made_for_one_purpose_is_not_valid_for_another() -> None:
    g = Identity.generate(is_device=False)
    env = sign(_body(g), g.sign_key)
    with pytest.raises(SignatureError, match="device-message"):
        verify(env, g.public.sign_key, Purpose.DEVICE)
    # A device-typed body signed under the guardian domain by hand is refused on its type.
    body = dumps(_body(g, type=MessageType.ACK, payload={}).to_json())
    forged = Envelope(g.id, body, g.sign_key.sign(b"minormode/v1/guardian-message\x00" + body))
    with pytest.raises(SignatureError, match="is not a guardian-message"):
        verify(forged, g.public.sign_key, Purpose.GUARDIAN)


def test_another_key_and_a_kid_mismatch_are_refused() -> None:
    g, other = Identity.generate(is_device=False), Identity.generate(is_device=False)
    env = sign(_body(g), g.sign_key)
    with pytest.raises(SignatureError):
        verify(env, other.public.sign_key, Purpose.GUARDIAN)
    relabelled = Envelope(other.id, env.body_bytes, env.sig)
    with pytest.raises(SignatureError, match="kid"):
        verify(relabelled, g.public.sign_key, Purpose.GUARDIAN)


@pytest.mark.parametrize("changes, where", [
    ({"exp": NOW}, "body.exp"),
    ({"exp": NOW + 9 * 86_400}, "body.exp"),  # decisions live at most 8 days
    ({"device": ""}, "body.device"),  # only keyring entries are family-wide
    ({"type": MessageType.KEYRING}, "body.device"),
])
def test_lifetimes_and_the_family_wide_keyring_are_enforced(changes: dict[str, object], where: str) -> None:
    g = Identity.generate(is_device=False)
    with pytest.raises(ProtocolError) as err:
        sign(_body(g, **changes), g.sign_key)
    assert err.value.where == where


def test_parse_body_refuses_unknown_keys_and_non_integer_numbers() -> None:
    g = Identity.generate(is_device=False)
    good = _body(g).to_json()
    for key, value, where in (("extra", 1, "body.extra"), ("seq", 1.0, "body.seq"),
                              ("seq", -1, "body.seq"), ("family", "AB" * 16, "body.family")):
        with pytest.raises(ProtocolError) as err:
            parse_body(dumps(good | {key: value}))
        assert err.value.where == where


def test_envelope_reader_refuses_malformed_outer_json() -> None:
    g = Identity.generate(is_device=False)
    env = sign(_body(g), g.sign_key).to_json()
    for bad, where in ((env | {"v": 2}, "envelope.v"), (env | {"sig": env["sig"][:-2]}, "envelope.sig"),
                       ({k: v for k, v in env.items() if k != "kid"}, "envelope.kid"),
                       (env | {"body": b64(b"x" * 263_000)}, "envelope.body")):
        with pytest.raises(ProtocolError) as err:
            parse(dumps(bad))
        assert err.value.where == where


def test_check_time_allows_small_skew_and_refuses_expiry() -> None:
    g = Identity.generate(is_device=False)
    body = _body(g)
    check_time(body, NOW)
    check_time(body, NOW - 600)  # issued up to 10 minutes "in the future" of a slow clock
    with pytest.raises(ProtocolError, match="future"):
        check_time(body, NOW - 601)
    with pytest.raises(ProtocolError, match="expired"):
        check_time(body, NOW + 3600)
