"""The forwarder on loopback with a fake upstream: blocking, forwarding, ID rewriting,
EDNS passthrough, failover, timeouts, TCP, SafeSearch rewriting, profile swaps, events."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.core.policy import YouTubeMode
from agent.filter import dnswire as dw
from agent.filter.fakeupstream import FakeUpstream
from agent.filter.server import DnsFilter, FilterSettings
from agent.store.events import EventKind, MemoryEventSink

pytestmark = pytest.mark.timeout(60)


def ask(addr: tuple[str, int], msg: bytes, timeout: float = 3.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, addr)
        return s.recv(65535)


def ask_tcp(addr: tuple[str, int], msg: bytes) -> bytes:
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(len(msg).to_bytes(2, "big") + msg)
        head = s.recv(2, socket.MSG_WAITALL)
        return s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)


class Learner:
    def __init__(self) -> None:
        self.seen: list[tuple[bytes, int]] = []

    def learn(self, addresses: Any) -> None:
        self.seen.extend(addresses)


def test_blocked_gets_nxdomain_without_asking_upstream(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    sink = MemoryEventSink()
    flt = make_filter(events=sink, event_batch=3600)  # nothing is written before stop()
    for _ in range(3):
        reply = ask(flt.bound[0], dw.build_query("www.Porn.example", ident=0x4242))
        assert reply[:2] == b"\x42\x42" and reply[3] & 0xF == dw.NXDOMAIN
    assert upstream.count == 0
    assert sink.events == []  # the loop never writes an event itself
    flt.stop()  # the batcher writes what was counted, in one batch
    events = [e for e in sink.events if e.kind is EventKind.DNS_BLOCKED]
    assert [e.data for e in events] == [{"domain": "www.porn.example", "reason": "adult", "count": 3}]
    assert sink.batches == 1 and flt.stats.events == 1


def test_fast_path_nxdomain_is_the_reference_answer(
    make_filter: Callable[..., DnsFilter]
) -> None:
    flt = make_filter()
    for edns in (False, True):
        query = dw.build_query("WWW.casino.test", dw.TYPE_AAAA, ident=0x0102, edns=edns)
        assert ask(flt.bound[0], query) == dw.nxdomain(query, dw.parse_query(query))


def test_allowed_is_forwarded_with_id_restored_and_edns_passed(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    flt = make_filter()
    reply = ask(flt.bound[0], dw.build_query("Allowed.test", ident=0x0707, edns=True))
    assert reply[:2] == b"\x07\x07"
    rcode, _name, _t, records = dw.parse_response(reply)
    assert rcode == dw.NOERROR and records[0].rdata == bytes([10, 20, 30, 40])
    assert reply.endswith(dw.OPT_RR)  # upstream saw (and echoed) the OPT record
    assert upstream.queries == [dw.encode_name("allowed.test")]


def test_configured_block_address(make_filter: Callable[..., DnsFilter]) -> None:
    flt = make_filter(block_addresses=(bytes(4), bytes(16)))
    reply = ask(flt.bound[0], dw.build_query("casino.test"))
    rcode, _n, _t, records = dw.parse_response(reply)
    assert rcode == dw.NOERROR and [r.rdata for r in records] == [bytes(4)]


def test_malformed_gets_formerr_and_is_not_forwarded(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    flt = make_filter()
    bad = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"
    reply = ask(flt.bound[0], bad)
    assert reply[3] & 0xF == dw.FORMERR
    assert upstream.count == 0 and flt.stats.malformed == 1


def test_failover_to_the_second_upstream_and_servfail_when_all_fail(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        flt = make_filter(upstreams=(dead.getsockname(), upstream.addr), timeout=1.0)
        reply = ask(flt.bound[0], dw.build_query("fine.test"))
        assert dw.parse_response(reply)[0] == dw.NOERROR
        assert flt.stats.timeouts == 1
        only_dead = make_filter(upstreams=(dead.getsockname(),), timeout=0.3)
        reply = ask(only_dead.bound[0], dw.build_query("fine.test"))
        assert reply[3] & 0xF == dw.SERVFAIL
    finally:
        dead.close()


def test_spoofed_answer_with_wrong_question_is_ignored(
    make_filter: Callable[..., DnsFilter], lists_dir: Path
) -> None:
    # An "upstream" that answers a different name first, then the right one.
    fake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fake.bind(("127.0.0.1", 0))
    fake.settimeout(3)
    try:
        flt = make_filter(upstreams=(fake.getsockname(),))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(3)
        client.sendto(dw.build_query("real.test"), flt.bound[0])
        query, src = fake.recvfrom(4096)
        q = dw.parse_query(query)
        evil = dw.with_question(query, q, dw.encode_name("evil.test"))
        fake.sendto(dw.address_answer(evil, dw.parse_query(evil), (b"\x06\x06\x06\x06",), 9), src)
        fake.sendto(dw.address_answer(query, q, (b"\x01\x01\x01\x01",), 9), src)
        reply = client.recv(4096)
        assert dw.parse_response(reply)[3][0].rdata == b"\x01\x01\x01\x01"
        client.close()
    finally:
        fake.close()


def test_tcp_blocked_and_forwarded(make_filter: Callable[..., DnsFilter]) -> None:
    flt = make_filter()
    addr = flt.bound[0]
    assert ask_tcp(addr, dw.build_query("casino.test"))[3] & 0xF == dw.NXDOMAIN
    reply = ask_tcp(addr, dw.build_query("ok.test", ident=0x5151))
    assert reply[:2] == b"\x51\x51" and dw.parse_response(reply)[3][0].rdata == bytes(
        [10, 20, 30, 40])


def test_safesearch_cname_over_udp_and_tcp(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    flt = make_filter(safesearch=True, youtube=YouTubeMode.STRICT)
    for reply in (ask(flt.bound[0], dw.build_query("www.google.fr")),
                  ask_tcp(flt.bound[0], dw.build_query("www.google.fr"))):
        _rcode, qname, _t, records = dw.parse_response(reply)
        assert qname == dw.encode_name("www.google.fr")
        assert records[0].rtype == dw.TYPE_CNAME
        assert records[0].rdata == dw.encode_name("forcesafesearch.google.com")
        assert records[1].rdata == bytes([216, 239, 38, 120])
    assert dw.encode_name("www.google.fr") not in upstream.queries


def test_set_profile_swaps_decisions_and_cache(
    make_filter: Callable[..., DnsFilter], mkprofile: Callable[..., Any]
) -> None:
    flt = make_filter()
    addr = flt.bound[0]
    assert ask(addr, dw.build_query("chat.social.test"))[3] & 0xF == dw.NOERROR
    flt.set_profile(mkprofile(block=("social",)), 2)
    assert flt.version == 2
    assert ask(addr, dw.build_query("chat.social.test"))[3] & 0xF == dw.NXDOMAIN
    flt.set_profile(mkprofile(allowlist_only=True, allow=("school.test",)), 3)
    assert ask(addr, dw.build_query("ok.test"))[3] & 0xF == dw.NXDOMAIN
    assert ask(addr, dw.build_query("www.school.test"))[3] & 0xF == dw.NOERROR


@pytest.mark.parametrize("allowlist_only", [True, False])
def test_every_mode_learns_addresses_before_answering(
    make_filter: Callable[..., DnsFilter], allowlist_only: bool
) -> None:
    """The child's egress is closed in every mode: the addresses of allowed answers to
    address questions are learned, blocked names' never, other types' never."""
    learner = Learner()
    flt = make_filter(allowlist_only=allowlist_only, allow=("school.test",), learner=learner)
    ask(flt.bound[0], dw.build_query("www.school.test"))
    ask(flt.bound[0], dw.build_query("www.school.test", dw.TYPE_AAAA))
    ask(flt.bound[0], dw.build_query("www.porn.example"))
    ask(flt.bound[0], dw.build_query("www.school.test", dw.TYPE_HTTPS))
    assert learner.seen == [(bytes([10, 20, 30, 40]), 300), (socket.inet_pton(
        socket.AF_INET6, "fd00::40"), 300)]


def test_bad_listen_address_is_a_clear_error(
    lists_dir: Path, mkprofile: Callable[..., Any]
) -> None:
    settings = FilterSettings(listen=(("192.0.2.1", 53),), upstreams=(("127.0.0.1", 9),),
                              lists_dir=lists_dir)
    flt = DnsFilter(settings, mkprofile(), 1, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(OSError, match=r"192\.0\.2\.1:53"):
        flt.open()


def test_tcp_blocks_are_events_too_and_rate_limited(
    make_filter: Callable[..., DnsFilter]
) -> None:
    sink = MemoryEventSink()
    flt = make_filter(events=sink, event_batch=0.05)
    assert ask_tcp(flt.bound[0], dw.build_query("casino.test"))[3] & 0xF == dw.NXDOMAIN
    deadline = time.monotonic() + 5
    while flt.stats.events < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e.data for e in sink.events] == [{"domain": "casino.test", "reason": "gambling", "count": 1}]
    for _ in range(2):  # within the name's minute: held, and written as one event at stop
        assert ask_tcp(flt.bound[0], dw.build_query("casino.test"))[3] & 0xF == dw.NXDOMAIN
    batches = sink.batches
    deadline = time.monotonic() + 0.5
    while sink.batches == batches and time.monotonic() < deadline:  # ten batch periods
        time.sleep(0.02)
    assert len(sink.events) == 1, "a name's lookups within its minute are held, not written"
    flt.stop()
    assert [e.data["count"] for e in sink.events] == [1, 2]


def test_garbage_never_stops_the_loop(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    import random

    flt = make_filter()
    rng = random.Random(5)
    base = dw.build_query("www.example.test", edns=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(2000):
            if i % 2:
                junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
            else:  # a valid query with a few bytes flipped
                b = bytearray(base)
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] = rng.getrandbits(8)
                junk = bytes(b)
            s.sendto(junk, flt.bound[0])
    # Garbage over TCP too: a frame of random bytes, then a frame length with no body.
    with socket.create_connection(flt.bound[0], timeout=5) as t:
        t.sendall(b"\x00\x05hello\x00\x30")
    reply = ask(flt.bound[0], dw.build_query("still-alive.test", ident=0x7777))
    assert reply[:2] == b"\x77\x77" and dw.parse_response(reply)[0] == dw.NOERROR
    assert flt.stats.malformed > 500


def test_in_flight_queries_are_bounded(make_filter: Callable[..., DnsFilter]) -> None:
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # never answers: the first query stays in flight
    try:
        flt = make_filter(upstreams=(dead.getsockname(),), timeout=5.0, max_pending=1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.sendto(dw.build_query("one.test"), flt.bound[0])
            dead.settimeout(3)
            dead.recv(512)  # the first query reached the upstream
            reply = ask(flt.bound[0], dw.build_query("two.test"))
        assert reply[3] & 0xF == dw.SERVFAIL
        assert flt.stats.forwarded == 1
    finally:
        dead.close()


def test_repeated_blocked_queries_use_the_stored_answer_until_the_profile_changes(
    make_filter: Callable[..., DnsFilter], mkprofile: Callable[..., Any]
) -> None:
    sink = MemoryEventSink()
    flt = make_filter(events=sink)
    query = dw.build_query("casino.test", ident=1, edns=True)
    first = ask(flt.bound[0], query)
    again = ask(flt.bound[0], b"\x00\x02" + query[2:])
    assert again == b"\x00\x02" + first[2:] and first == dw.nxdomain(query, dw.parse_query(query))
    # the native path counts a batch after sending its replies: wait for the count, bounded
    deadline = time.monotonic() + 5
    while flt.stats.blocked < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flt.stats.blocked == 2
    flt.set_profile(mkprofile(block=()), 2)
    assert ask(flt.bound[0], query)[3] & 0xF == dw.NOERROR


def test_safesearch_rewrites_aaaa_and_https_but_not_other_types(
    make_filter: Callable[..., DnsFilter], upstream: FakeUpstream
) -> None:
    flt = make_filter(safesearch=True)
    target = dw.encode_name("strict.bing.com")
    _rc, _q, _t, records = dw.parse_response(ask(flt.bound[0], dw.build_query(
        "www.bing.com", dw.TYPE_AAAA)))
    assert [(r.rtype, r.rdata) for r in records] == [
        (dw.TYPE_CNAME, target), (dw.TYPE_AAAA, socket.inet_pton(socket.AF_INET6, "fd00::40"))]
    _rc, _q, _t, records = dw.parse_response(ask(flt.bound[0], dw.build_query(
        "www.bing.com", dw.TYPE_HTTPS)))
    assert [r.rtype for r in records] == [dw.TYPE_CNAME]  # the fake has no HTTPS records
    ask(flt.bound[0], dw.build_query("www.bing.com", 15))  # MX: not rewritten
    assert upstream.queries == [target, target, dw.encode_name("www.bing.com")]
