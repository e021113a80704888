"""What the filter answers a client, as pure functions shared by the UDP and TCP paths.

A blocked name gets NXDOMAIN (or the configured block addresses); a SafeSearch name is
asked upstream as its target and answered with a CNAME to it; in allowlist-only mode the
addresses of every allowed answer are handed to the nftables learner before the child
sees them. The two transports differ only in how bytes travel, never in these answers.
"""

from __future__ import annotations

from agent.filter import dnswire as dw
from agent.filter.match import REWRITE, Verdict

Learned = list[tuple[bytes, int]]  # (4- or 16-byte address, TTL seconds)

_REWRITTEN_TYPES = (dw.TYPE_A, dw.TYPE_AAAA, dw.TYPE_HTTPS)


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


def client_reply(
    query: bytes, question: dw.Question, target: bytes | None, upstream: bytes, learning: bool
) -> tuple[bytes, Learned]:
    """Rewrite and learn: the client's answer to `query` from the upstream's answer to what
    was sent (the question itself, or its SafeSearch `target`), and the addresses to
    learn first when `learning` (allowlist-only with a learner). Raises dw.WireError if
    the upstream's answer does not parse where it has to."""
    if target is not None:
        rcode, _qname, _qtype, records = dw.parse_response(upstream)
        reply = dw.cname_answer(query, question, target, rcode, records)
    else:
        records = dw.parse_response(upstream)[3] if learning else []
        reply = query[:2] + upstream[2:]
    if not learning:
        return reply, []
    return reply, [
        (r.rdata, r.ttl)
        for r in records
        if (r.rtype == dw.TYPE_A and len(r.rdata) == 4)
        or (r.rtype == dw.TYPE_AAAA and len(r.rdata) == 16)
    ]
