"""The family keyring: only a guardian already in it can change it; forks are refused."""

from __future__ import annotations

import pytest

from protocol.encoding import dumps
from protocol.envelope import Body, MessageType, sign
from protocol.errors import ProtocolError, SignatureError
from protocol.keyring import GENESIS_PREV, Keyring, Op, make_genesis
from protocol.keys import Identity

NOW = 1_796_000_000
FAMILY = "ab" * 16


def _people() -> tuple[Identity, Identity, Identity]:
    return (Identity.generate(is_device=False, label="a"), Identity.generate(is_device=False, label="b"),
            Identity.generate(is_device=True, label="tablet"))


def test_genesis_then_add_and_remove_guardians_and_devices() -> None:
    a, b, dev = _people()
    ring = Keyring.from_entries([make_genesis(a, FAMILY, NOW)])
    assert set(ring.guardians) == {a.id} and ring.head_seq == 0
    ring = ring.extend(ring.entry(a, Op.ADD_DEVICE, party=dev.public, now=NOW))
    ring = ring.extend(ring.entry(a, Op.ADD_GUARDIAN, party=b.public, now=NOW))
    ring = ring.extend(ring.entry(b, Op.REMOVE_GUARDIAN, target=a.id, now=NOW))
    assert set(ring.guardians) == {b.id} and set(ring.devices) == {dev.id} and ring.head_seq == 3
    again = Keyring.from_json(ring.to_json())
    assert again.head_hash == ring.head_hash and set(again.guardians) == {b.id}


def test_a_removed_guardian_can_sign_no_further_entry() -> None:
    a, b, _ = _people()
    ring = Keyring.from_entries([make_genesis(a, FAMILY, NOW)])
    ring = ring.extend(ring.entry(a, Op.ADD_GUARDIAN, party=b.public, now=NOW))
    ring = ring.extend(ring.entry(b, Op.REMOVE_GUARDIAN, target=a.id, now=NOW))
    c = Identity.generate(is_device=False)
    with pytest.raises(SignatureError, match="not an active guardian"):
        ring.extend(ring.entry(a, Op.ADD_GUARDIAN, party=c.public, now=NOW))


def test_an_outsider_cannot_add_a_key_even_with_a_well_formed_entry() -> None:
    a, b, _ = _people()
    outsider = Identity.generate(is_device=False)
    ring = Keyring.from_entries([make_genesis(a, FAMILY, NOW)])
    forged = ring.entry(outsider, Op.ADD_GUARDIAN, party=b.public, now=NOW)
    with pytest.raises(SignatureError):
        ring.extend(forged)
    # Claiming to be `a` with the outsider's signature fails on the signature itself.
    relabelled = type(forged)(a.id, forged.body_bytes, forged.sig)
    with pytest.raises(SignatureError):
        ring.extend(relabelled)


def test_chain_rules() -> None:
    a, b, dev = _people()
    ring = Keyring.from_entries([make_genesis(a, FAMILY, NOW)])
    with pytest.raises(ProtocolError, match="last guardian"):
        ring.extend(ring.entry(a, Op.REMOVE_GUARDIAN, target=a.id, now=NOW))
    with pytest.raises(ProtocolError, match="added before"):
        ring.extend(ring.entry(a, Op.ADD_GUARDIAN, party=a.public, now=NOW))
    with pytest.raises(ProtocolError, match="not active"):
        ring.extend(ring.entry(a, Op.REMOVE_DEVICE, target=dev.id, now=NOW))
    with pytest.raises(ProtocolError, match="one genesis"):
        ring.extend(sign(Body(MessageType.KEYRING, FAMILY, "", "11" * 16, 1, NOW, NOW + 10, a.id,
                              {"op": "genesis", "prev": ring.head_hash,
                               "guardian": {"kid": b.id, "sign": b.public.sign.hex(),
                                            "seal": b.public.seal.hex(), "label": ""}}), a.sign_key))
    skip = sign(Body(MessageType.KEYRING, FAMILY, "", "12" * 16, 2, NOW, NOW + 10, a.id,
                     {"op": "add_guardian", "prev": ring.head_hash,
                      "guardian": {"kid": b.id, "sign": b.public.sign.hex(), "seal": b.public.seal.hex(),
                                   "label": ""}}), a.sign_key)
    with pytest.raises(ProtocolError, match="does not follow"):
        ring.extend(skip)
    other_family = Keyring.from_entries([make_genesis(a, "cd" * 16, NOW)])
    with pytest.raises(ProtocolError, match="family"):
        ring.extend(other_family.entry(a, Op.ADD_GUARDIAN, party=b.public, now=NOW))


def test_a_fork_is_refused_and_known_entries_are_skipped() -> None:
    a, b, dev = _people()
    ring = Keyring.from_entries([make_genesis(a, FAMILY, NOW)])
    left = ring.extend(ring.entry(a, Op.ADD_GUARDIAN, party=b.public, now=NOW))
    right_entry = ring.entry(a, Op.ADD_DEVICE, party=dev.public, now=NOW)
    with pytest.raises(ProtocolError, match="does not follow"):
        left.extend(right_entry)
    with pytest.raises(ProtocolError, match="fork"):
        left.extend_all([ring.entries[0], right_entry])
    assert left.extend_all(left.entries).head_hash == left.head_hash


def test_genesis_must_be_self_signed_with_a_zero_prev() -> None:
    a, b, _ = _people()
    g = make_genesis(a, FAMILY, NOW)
    by_other = sign(Body(MessageType.KEYRING, FAMILY, "", "13" * 16, 0, NOW, NOW + 10, b.id,
                         {"op": "genesis", "prev": GENESIS_PREV,
                          "guardian": {"kid": a.id, "sign": a.public.sign.hex(), "seal": a.public.seal.hex(),
                                       "label": ""}}), b.sign_key)
    with pytest.raises(SignatureError, match="signed by the guardian it adds"):
        Keyring.from_entries([by_other])
    not_first = Keyring.from_entries([g]).entry(a, Op.ADD_GUARDIAN, party=b.public, now=NOW)
    with pytest.raises(ProtocolError, match="first entry"):
        Keyring.from_entries([not_first])
    with pytest.raises(ProtocolError):
        Keyring.from_entries([])


def test_a_guardian_bundle_whose_id_does_not_hash_its_keys_is_refused() -> None:
    a, b, _ = _people()
    ring = Keyring.from_entries([make_genesis(a, FAMILY, NOW)])
    body = Body(MessageType.KEYRING, FAMILY, "", "14" * 16, 1, NOW, NOW + 10, a.id,
                {"op": "add_guardian", "prev": ring.head_hash,
                 "guardian": {"kid": b.id, "sign": a.public.sign.hex(), "seal": b.public.seal.hex(),
                              "label": ""}})
    with pytest.raises(ProtocolError, match="does not match the keys"):
        ring.extend(sign(body, a.sign_key))
    assert dumps(body.to_json())
