"""What a device accepts: each way a child, a thief or the server could replay, redirect,
downgrade or forge a rule is refused, and nothing else is."""

from __future__ import annotations

import pytest
from support.protocol_family import NOW, Family

from protocol.accept import ReplayState, accept, open_guardian_message
from protocol.compose import compose, seal_to_device
from protocol.envelope import Envelope, parse, parse_body
from protocol.errors import ProtocolError, SealError, SignatureError
from protocol.keyring import Op
from protocol.keys import Identity
from protocol.messages import GrantTime, PolicyMessage, SetGuardianCode
from protocol.sealing import guardian_message_ctx, seal


def _policy(version: int) -> PolicyMessage:
    return PolicyMessage({"version": version, "age_band": "8-12"})


def test_a_signed_policy_and_decision_are_accepted(family: Family) -> None:
    g, dev = family.guardian, family.device
    mid, sealed = g.policy(dev.id, {"version": 3, "age_band": "8-12"}, NOW)
    got = open_guardian_message(sealed.encode(), mid, dev, family.keyring, family.state, NOW)
    assert isinstance(got.payload, PolicyMessage) and got.body.seq == 3 and got.signer.id == g.kid
    state = family.state.after(got.body, NOW)
    mid, sealed = g.decide(dev.id, GrantTime(15, None), NOW)
    got = open_guardian_message(sealed.encode(), mid, dev, family.keyring, state, NOW)
    assert got.payload == GrantTime(15, None)


def _accept(family: Family, env: Envelope, state: ReplayState | None = None, now: int = NOW) -> None:
    accept(env, family.keyring, family.device.id, state or family.state, now)


def test_downgrade_and_equal_version_are_refused(family: Family) -> None:
    g, dev = family.guardian.identity, family.device
    state = ReplayState(policy_version=5)
    for version in (4, 5):
        env = compose(g, family.keyring.family, dev.id, _policy(version), NOW, seq=version)
        with pytest.raises(ProtocolError, match="not newer") as err:
            _accept(family, env, state)
        assert err.value.where == "message.body.seq"
    _accept(family, compose(g, family.keyring.family, dev.id, _policy(6), NOW, seq=6), state)


def test_a_replayed_decision_is_refused(family: Family) -> None:
    g, dev = family.guardian.identity, family.device
    env = compose(g, family.keyring.family, dev.id, GrantTime(30, None), NOW)
    body = accept(env, family.keyring, dev.id, family.state, NOW).body
    with pytest.raises(ProtocolError, match="replay"):
        _accept(family, env, family.state.after(body, NOW))


def test_another_devices_or_familys_message_is_refused(family: Family) -> None:
    g = family.guardian.identity
    other = Identity.generate(is_device=True)
    with pytest.raises(SignatureError, match="addressed to device"):
        _accept(family, compose(g, family.keyring.family, other.id, GrantTime(5, None), NOW))
    with pytest.raises(SignatureError, match="family"):
        _accept(family, compose(g, "ee" * 16, family.device.id, GrantTime(5, None), NOW))


def test_expired_and_future_messages_are_refused(family: Family) -> None:
    g, dev = family.guardian.identity, family.device
    env = compose(g, family.keyring.family, dev.id, GrantTime(5, None), NOW, lifetime=60)
    with pytest.raises(ProtocolError, match="expired"):
        _accept(family, env, now=NOW + 60)
    with pytest.raises(ProtocolError, match="future"):
        _accept(family, env, now=NOW - 3600)


def test_a_removed_guardians_signature_is_refused_even_for_an_older_message(family: Family) -> None:
    a = family.guardian.identity
    b = Identity.generate(is_device=False)
    old = compose(a, family.keyring.family, family.device.id, GrantTime(5, None), NOW)
    ring = family.keyring.extend(family.keyring.entry(a, Op.ADD_GUARDIAN, party=b.public, now=NOW))
    ring = ring.extend(ring.entry(b, Op.REMOVE_GUARDIAN, target=a.id, now=NOW))
    with pytest.raises(SignatureError, match="not an active guardian"):
        accept(old, ring, family.device.id, family.state, NOW)


def test_a_stranger_and_the_device_itself_cannot_sign_rules(family: Family) -> None:
    stranger = Identity.generate(is_device=False)
    with pytest.raises(SignatureError):
        _accept(family, compose(stranger, family.keyring.family, family.device.id, GrantTime(5, None), NOW))
    with pytest.raises(SignatureError):
        _accept(family, compose(family.device, family.keyring.family, family.device.id, GrantTime(5, None), NOW))


def test_every_flipped_byte_of_a_sealed_message_is_refused(family: Family) -> None:
    """Sealed to the device alone, so every byte of the blob is one the device depends on."""
    g, dev = family.guardian.identity, family.device
    env = compose(g, family.keyring.family, dev.id, SetGuardianCode(bytes(32), 30), NOW)
    mid = parse_body(env.body_bytes).id
    data = seal(env.encode(), guardian_message_ctx(family.keyring.family, dev.id, mid),
                [dev.public.seal_key]).encode()
    open_guardian_message(data, mid, dev, family.keyring, family.state, NOW)
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x04
        with pytest.raises(ProtocolError):
            open_guardian_message(bytes(changed), mid, dev, family.keyring, family.state, NOW)


def test_a_message_queued_under_another_id_is_refused(family: Family) -> None:
    g, dev = family.guardian, family.device
    _mid, sealed = g.decide(dev.id, GrantTime(10, None), NOW)
    with pytest.raises(SealError):
        open_guardian_message(sealed.encode(), "ff" * 16, dev, family.keyring, family.state, NOW)
    # Re-sealed by the relay under the new id: the context matches, the inner id does not.
    inner = compose(g.identity, family.keyring.family, dev.id, GrantTime(10, None), NOW)
    resealed = seal_to_device(inner, "ff" * 16, family.keyring, dev.id)
    with pytest.raises(ProtocolError, match="queued as"):
        open_guardian_message(resealed.encode(), "ff" * 16, dev, family.keyring, family.state, NOW)
    assert parse(inner.encode()) == inner


def test_bad_payloads_name_the_field(family: Family) -> None:
    g, dev = family.guardian.identity, family.device
    bad = compose(g, family.keyring.family, dev.id, GrantTime(721, None), NOW)
    with pytest.raises(ProtocolError) as err:
        _accept(family, bad)
    assert err.value.where == "message.body.payload.minutes"
    mismatch = compose(g, family.keyring.family, dev.id, _policy(3), NOW, seq=4)
    with pytest.raises(ProtocolError) as err:
        _accept(family, mismatch)
    assert err.value.where == "message.body.payload.policy.version"


def test_replay_memory_forgets_only_expired_ids(family: Family) -> None:
    g, dev = family.guardian.identity, family.device
    env = compose(g, family.keyring.family, dev.id, GrantTime(5, None), NOW, lifetime=100)
    body = accept(env, family.keyring, dev.id, family.state, NOW).body
    state = family.state.after(body, NOW)
    assert body.id in state.used
    later = compose(g, family.keyring.family, dev.id, GrantTime(5, None), NOW + 200)
    state = state.after(accept(later, family.keyring, dev.id, state, NOW + 200).body, NOW + 200)
    assert body.id not in state.used and len(state.used) == 1
