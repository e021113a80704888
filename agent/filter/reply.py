"""What the filter answers a client, as pure functions shared by the UDP and TCP paths.

A blocked name gets NXDOMAIN (or the configured block addresses); a SafeSearch name is
asked upstream as its target and answered with a CNAME to it; the addresses of every
allowed answer are handed to the nftables learner before the child sees them (the child's
egress reaches no others, in every mode). Every name of an upstream answer's CNAME chain
is judged too: a chain that reaches a blocked name is answered as that name would be (and
nothing of it learned), so an allowed or unknown name cannot lead the child to a blocked
site's addresses. The two transports differ only in how bytes travel, never in these
answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from agent.filter import dnswire as dw
from agent.filter.match import BLOCK, REWRITE, Verdict

Learned = list[tuple[bytes, int]]  # (4- or 16-byte address, TTL seconds)

_REWRITTEN_TYPES = (dw.TYPE_A, dw.TYPE_AAAA, dw.TYPE_HTTPS)
_ADDRESS_TYPES = (dw.TYPE_A, dw.TYPE_AAAA)


def rewrite_target(verdict: Verdict, question: dw.Question) -> bytes | None:
    """The SafeSearch target to ask upstream instead, for the types a CNAME answers;
    None: ask for the name itself."""
    if verdict.action == REWRITE and question.qtype in _REWRITTEN_TYPES:
        return verdict.target
    return None


def blocked_answer(
    query: bytes, question: dw.Question, block_addresses: tuple[bytes, ...], ttl: int
) -> bytes:
    """NXDOMAIN, or the block addresses for A/AAAA questions when some are configured."""
    if block_addresses and question.qtype in (dw.TYPE_A, dw.TYPE_AAAA):
        return dw.address_answer(query, question, block_addresses, ttl)
    return dw.nxdomain(query, question)


class ChainBlock(NamedTuple):
    """The first blocked name of an answer's CNAME chain and its verdict's reason."""

    name: bytes
    reason: str


# Type CNAME, class IN, as every such record's fixed part starts: without these four bytes
# in a message it holds none and need not be parsed to find one. A CNAME of another class
# aliases nothing for an IN question (RFC 1034 3.6.2; stub resolvers such as glibc's skip
# records whose class is not IN), so the chain is the class IN CNAMEs.
_CNAME_IN = dw.TYPE_CNAME.to_bytes(2, "big") + dw.CLASS_IN.to_bytes(2, "big")


def may_hold_cname(upstream: bytes) -> bool:
    return _CNAME_IN in upstream


def blocked_in_chain(records: list[dw.Record], judge: Callable[[bytes], Verdict]) -> ChainBlock | None:
    """The first name of the answer's CNAME chain (owners and targets) that `judge`
    blocks; None if the whole chain is allowed."""
    for r in records:
        if r.rtype != dw.TYPE_CNAME or r.rclass != dw.CLASS_IN:
            continue
        for name in (r.name, r.rdata):  # read_name lowercases both
            v = judge(name)
            if v.action == BLOCK:
                return ChainBlock(name, v.reason)
    return None


def client_reply(
    query: bytes, question: dw.Question, target: bytes | None, upstream: bytes, learning: bool,
    judge: Callable[[bytes], Verdict],
) -> tuple[bytes, Learned, ChainBlock | None]:
    """Rewrite, inspect and learn: the client's answer to `query` from the upstream's answer
    to what was sent (the question itself, or its SafeSearch `target`), the addresses to
    learn first when `learning` (a learner is wired), and the chain's blocked
    name if `judge` blocks one (then no reply and nothing to learn: the caller answers as
    for a blocked name). Raises dw.WireError if the upstream's answer does not parse where
    it has to."""
    # Only address questions are learned from: the child connects to what A/AAAA answered.
    learning = learning and question.qtype in _ADDRESS_TYPES
    rcode, records = 0, list[dw.Record]()
    if target is not None or learning or may_hold_cname(upstream):
        rcode, _qname, _qtype, records = dw.parse_response(upstream)
    blocked = blocked_in_chain(records, judge) if records else None
    if blocked is not None:
        return b"", [], blocked
    if target is not None:
        reply = dw.cname_answer(query, question, target, rcode, records)
    else:
        reply = query[:2] + upstream[2:]
    if not learning:
        return reply, [], None
    return reply, [
        (r.rdata, r.ttl)
        for r in records
        if (r.rtype == dw.TYPE_A and len(r.rdata) == 4)
        or (r.rtype == dw.TYPE_AAAA and len(r.rdata) == 16)
    ], None
