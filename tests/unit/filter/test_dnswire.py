"""The raw-bytes DNS parser and builders: valid queries, malformed input, fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.filter import dnswire as dw


def test_parses_a_plain_query_lowercased_and_keeps_the_question_as_sent() -> None:
    msg = dw.build_query("WwW.Example.COM", dw.TYPE_AAAA, ident=0xBEEF)
    q = dw.parse_query(msg)
    assert q.qname == b"\x03www\x07example\x03com\x00"
    assert (q.qtype, q.qclass, q.edns) == (dw.TYPE_AAAA, dw.CLASS_IN, False)
    assert q.end == len(msg)
    reply = dw.nxdomain(msg, q)
    assert reply[:2] == b"\xbe\xef"
    assert reply[3] & 0x0F == dw.NXDOMAIN and reply[2] & 0x80  # QR set
    assert reply[12 : q.end] == msg[12 : q.end]  # 0x20 case preserved for the client


def test_edns_is_detected_and_echoed() -> None:
    msg = dw.build_query("example.com", edns=True)
    q = dw.parse_query(msg)
    assert q.edns
    reply = dw.nxdomain(msg, q)
    assert struct.unpack("!H", reply[10:12])[0] == 1
    assert reply.endswith(dw.OPT_RR)


def test_compressed_question_name_is_followed() -> None:
    # As in a response: a name at offset 25 ends with a pointer to the one at offset 12.
    msg = b"\x00" * 12 + b"\x07example\x03com\x00" + b"\x03www\xc0\x0c"
    name, end = dw.read_name(msg, 25)
    assert name == b"\x03www\x07example\x03com\x00"
    assert end == len(msg)


@pytest.mark.parametrize(
    ("msg", "rcode"),
    [
        (b"", None),
        (b"\x12\x34\x01", None),
        (dw.build_query("a.test")[:-3], dw.FORMERR),  # truncated type/class
        (dw.build_query("a.test")[:15], dw.FORMERR),  # truncated name
        (b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00" + b"\x01a\x00\x00\x01\x00\x01" * 2,
         dw.FORMERR),  # two questions
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
         dw.FORMERR),  # pointer to itself: a loop
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\xc0\x0e\x00\x01\x00\x01",
         dw.FORMERR),  # pointer forwards to itself
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x41" + b"a" * 65
         + b"\x00\x00\x01\x00\x01",
         dw.FORMERR),  # label type 0x40
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + (b"\x3f" + b"a" * 63) * 4
         + b"\x00\x00\x01\x00\x01", dw.FORMERR),  # name of 257 bytes
        (dw.build_query("a.test")[:-2] + b"\x00\x03", dw.REFUSED),  # class CHAOS
        (b"\x12\x34\x81\x80" + dw.build_query("a.test")[4:], None),  # a response
        (b"\x12\x34\x28\x00" + dw.build_query("a.test")[4:], dw.NOTIMP),  # opcode UPDATE
        (dw.build_query("a.test")[:11] + b"\x01" + dw.build_query("a.test")[12:] + b"\x00\x00",
         dw.FORMERR),  # ARCOUNT 1 but no OPT
        (b"\x12\x34\x01\x00\x00\x01\x00\x01\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01",
         dw.FORMERR),  # answer records in a query
    ],
)
def test_malformed_queries_raise_with_the_right_answer(msg: bytes, rcode: int | None) -> None:
    with pytest.raises(dw.WireError) as info:
        dw.parse_query(msg)
    assert info.value.rcode == rcode
    if rcode is not None:
        reply = dw.error_response(msg, rcode)
        assert reply[:2] == msg[:2] and reply[3] & 0x0F == rcode and len(reply) == 12


def test_longest_legal_name_parses() -> None:
    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, 255 wire bytes
    assert len(dw.encode_name(name)) == 255
    assert dw.parse_query(dw.build_query(name)).qname == dw.encode_name(name)


def test_address_answer_and_cname_answer_round_trip() -> None:
    msg = dw.build_query("www.google.com", dw.TYPE_A, edns=True)
    q = dw.parse_query(msg)
    a = dw.address_answer(msg, q, (b"\x01\x02\x03\x04", b"\x00" * 16), 60)
    rcode, qname, qtype, records = dw.parse_response(a)
    assert (rcode, qname, qtype) == (dw.NOERROR, q.qname, dw.TYPE_A)
    assert [(r.rtype, r.rdata, r.ttl) for r in records] == [(dw.TYPE_A, b"\x01\x02\x03\x04", 60)]
    target = dw.encode_name("forcesafesearch.google.com")
    up = dw.address_answer(dw.with_question(msg, q, target), dw.parse_query(
        dw.with_question(msg, q, target)), (b"\x08\x08\x08\x08",), 30)
    ups = dw.parse_response(up)[3]
    c = dw.cname_answer(msg, q, target, dw.NOERROR, ups)
    rcode, qname, _t, records = dw.parse_response(c)
    assert qname == q.qname
    assert records[0].rtype == dw.TYPE_CNAME and records[0].rdata == target
    assert records[1].name == target and records[1].rdata == b"\x08\x08\x08\x08"


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        q = dw.parse_query(data)
    except dw.WireError as exc:
        if exc.rcode is not None:
            assert len(dw.error_response(data, exc.rcode)) == 12
        return
    assert 1 <= len(q.qname) <= dw.MAX_NAME
    dw.nxdomain(data, q)


@settings(max_examples=2000, deadline=None)
@given(st.binary(min_size=12, max_size=300), st.integers(0, 290))
def test_fuzz_mutated_queries_and_responses(data: bytes, at: int) -> None:
    base = bytearray(dw.build_query("www.example.com", edns=True))
    base[at % len(base) :] = data[: max(0, len(base) - at % len(base))] or b""
    msg = bytes(base) + data[:8]
    for fn in (dw.parse_query, dw.parse_response):
        with contextlib.suppress(dw.WireError):
            fn(msg)
    with contextlib.suppress(dw.WireError):
        dw.read_name(msg, at % max(1, len(msg)))
