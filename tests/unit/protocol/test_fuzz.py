"""Fuzzing every reader a relay or a child can feed: random and mutated input ends in a
ProtocolError naming a field, never in another exception, and never in acceptance."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from support.protocol_family import NOW, make_family

from protocol.accept import open_guardian_message
from protocol.envelope import parse
from protocol.errors import ProtocolError
from protocol.keyring import Keyring
from protocol.messages import GrantTime
from protocol.pairing import Complete, Offer, QrPayload, Response, Reveal
from protocol.sealing import parse as parse_sealed

FAMILY = make_family()
MID, SEALED = FAMILY.guardian.decide(FAMILY.device.id, GrantTime(15, None), NOW)
GOOD = SEALED.encode()
ENVELOPE = FAMILY.keyring.entries[1].encode()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _only_protocol_errors(fn, data):  # type: ignore[no-untyped-def]
    try:
        fn(data)
    except ProtocolError as exc:
        assert exc.problem
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_cleanly_by_every_reader(data: bytes) -> None:
    for fn in (parse, parse_sealed, Keyring.loads):
        assert not _only_protocol_errors(fn, data)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_is_refused_cleanly_by_every_reader(value: object) -> None:
    data = json.dumps(value).encode()
    for fn in (parse, parse_sealed, Keyring.loads):
        assert not _only_protocol_errors(fn, data)
    for cls in (Offer, Response, Reveal, Complete):
        assert not _only_protocol_errors(cls.from_json, value)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_a_mutated_sealed_decision_is_never_accepted(index: int, xor: int) -> None:
    data = bytearray(GOOD)
    data[index] ^= xor
    try:
        open_guardian_message(bytes(data), MID, FAMILY.device, FAMILY.keyring, FAMILY.state, NOW)
    except ProtocolError:
        return
    # Only a flip inside another recipient's key wrap (which the device does not read)
    # leaves the device's view intact; then the message must be the original one.
    original = json.loads(GOOD)
    mutated = json.loads(bytes(data))
    mine = FAMILY.device.public.seal.hex()
    assert [w for w in mutated["wraps"] if w["to"] == mine] == [w for w in original["wraps"] if w["to"] == mine]
    assert {k: v for k, v in mutated.items() if k != "wraps"} == {k: v for k, v in original.items() if k != "wraps"}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(ENVELOPE) - 1), st.integers(1, 255))
def test_a_mutated_keyring_entry_never_extends_the_keyring(index: int, xor: int) -> None:
    data = bytearray(ENVELOPE)
    data[index] ^= xor
    base = Keyring.from_entries(FAMILY.keyring.entries[:1])
    try:
        base.extend(parse(bytes(data)))
    except ProtocolError:
        return
    raise AssertionError("a mutated entry was accepted")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_qr_links_never_crash(url: str) -> None:
    assert not _only_protocol_errors(QrPayload.from_url, "https://d/pair#" + url)
