"""CNAME inspection: every name of a forwarded answer's chain is judged, against a fake
upstream that answers with chains (as a CDN's resolver does)."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.filter import dnswire as dw
from agent.filter.fakeupstream import FakeUpstream
from agent.filter.reply import may_hold_cname
from agent.filter.server import DnsFilter
from agent.store.events import EventKind, MemoryEventSink

pytestmark = pytest.mark.timeout(60)

CHAINS = {
    "alias.test": "www.porn.example",  # unknown name -> a listed adult name
    "hop1.test": "hop2.test", "hop2.test": "hop3.casino.test",  # three hops to gambling
    "hop3.casino.test": "edge.cdn.test",
    "news.test": "edge.cdn.test",  # an allowed chain
    "school.test": "school.cdn.test",  # allowlist-only: allowed name, CDN not listed
    "trick.school.test": "porn.example",  # allowlist-only: allowed name into a category
    "kept.test": "ok.porn.example",  # the guardian allowed this one (guardian-allow list)
    "bypass.test": "use-application-dns.net",  # a chain to a canary
}


@pytest.fixture
def chains() -> Iterator[FakeUpstream]:
    up = FakeUpstream(cnames=CHAINS, overrides={"edge.cdn.test": "10.9.9.9",
                                                "school.cdn.test": "10.8.8.8",
                                                "porn.example": "10.6.6.6",
                                                "ok.porn.example": "10.5.5.5"}).start()
    yield up
    up.stop()


def ask(addr: tuple[str, int], name: str, tcp: bool = False) -> bytes:
    msg = dw.build_query(name, ident=0x5151)
    if tcp:
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(len(msg).to_bytes(2, "big") + msg)
            n = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
            return s.recv(n, socket.MSG_WAITALL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(msg, addr)
        return s.recv(4096)


class Learner:
    def __init__(self) -> None:
        self.seen: list[tuple[bytes, int]] = []

    def learn(self, addresses: Any) -> None:
        self.seen.extend(addresses)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_chain_reaching_a_blocked_name_is_blocked(
    make_filter: Callable[..., DnsFilter], chains: FakeUpstream, tcp: bool
) -> None:
    sink = MemoryEventSink()
    flt = make_filter(upstreams=(chains.addr,), events=sink)
    for name in ("alias.test", "hop1.test", "bypass.test"):
        reply = ask(flt.bound[0], name, tcp)
        assert reply[:2] == b"\x51\x51" and reply[3] & 0xF == dw.NXDOMAIN, name
        assert dw.parse_response(reply)[3] == [], "nothing of the chain reaches the child"
    ok = dw.parse_response(ask(flt.bound[0], "news.test", tcp))
    assert ok[0] == dw.NOERROR
    assert [(r.rtype, r.rdata) for r in ok[3]] == [
        (dw.TYPE_CNAME, dw.encode_name("edge.cdn.test")), (dw.TYPE_A, bytes([10, 9, 9, 9]))]
    assert flt.stats.cname_blocked == 3
    flt.stop()
    got = {(e.data["domain"], e.data["reason"]) for e in sink.events if e.kind is EventKind.DNS_BLOCKED}
    assert got == {("www.porn.example", "adult"), ("hop3.casino.test", "gambling"),
                   ("use-application-dns.net", "bypass")}


def test_a_chain_into_a_guardian_allowed_name_is_allowed(
    make_filter: Callable[..., DnsFilter], chains: FakeUpstream
) -> None:
    flt = make_filter(upstreams=(chains.addr,))
    reply = dw.parse_response(ask(flt.bound[0], "kept.test"))
    assert reply[0] == dw.NOERROR and reply[3][-1].rdata == bytes([10, 5, 5, 5])


def test_a_blocked_chain_gets_the_block_addresses_when_configured(
    make_filter: Callable[..., DnsFilter], chains: FakeUpstream
) -> None:
    flt = make_filter(upstreams=(chains.addr,), block_addresses=(bytes(4), bytes(16)))
    reply = dw.parse_response(ask(flt.bound[0], "alias.test"))
    assert reply[0] == dw.NOERROR and [r.rdata for r in reply[3]] == [bytes(4)]


def test_allowlist_only_learns_only_allowed_chains(
    make_filter: Callable[..., DnsFilter], chains: FakeUpstream
) -> None:
    learner = Learner()
    flt = make_filter(upstreams=(chains.addr,), learner=learner, allowlist_only=True,
                      allow=("school.test",))
    cdn = dw.parse_response(ask(flt.bound[0], "school.test"))
    assert cdn[0] == dw.NOERROR and cdn[3][-1].rdata == bytes([10, 8, 8, 8])  # its CDN works
    assert ask(flt.bound[0], "trick.school.test")[3] & 0xF == dw.NXDOMAIN
    assert learner.seen == [(bytes([10, 8, 8, 8]), 300)]  # never porn.example's 10.6.6.6


def test_an_answer_without_those_four_bytes_holds_no_cname() -> None:
    """The shortcut that skips parsing forwarded answers may only say "maybe" wrongly:
    every message with a class IN CNAME record (the chain) holds its four bytes."""
    rng = random.Random(17)
    up = FakeUpstream(cnames=CHAINS)
    try:
        for name in [*CHAINS, "plain.test", "other.example"]:
            for qtype in (dw.TYPE_A, dw.TYPE_AAAA, dw.TYPE_HTTPS):
                answer = up.answer(dw.build_query(name, qtype, edns=rng.random() < 0.5))
                assert answer is not None
                for _ in range(200):
                    msg = bytearray(answer)
                    for _ in range(rng.randint(0, 3)):
                        msg[rng.randrange(len(msg))] = rng.randrange(256)
                    try:
                        records = dw.parse_response(bytes(msg))[3]
                    except dw.WireError:
                        continue
                    if any(r.rtype == dw.TYPE_CNAME and r.rclass == dw.CLASS_IN for r in records):
                        assert may_hold_cname(bytes(msg))
    finally:
        up.stop()
