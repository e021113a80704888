"""The resolvers the filter forwards to: queries in flight, IDs, timeouts and failover.

Every forwarded UDP query gets a fresh upstream ID from an OS-seeded generator (never the
client's, never shown to it) and waits in `pending` until its answer, its timeout or a
flood bound (`max_pending`: beyond it the client gets SERVFAIL, IDs are only 16 bits). An
answer counts only from the socket the query went out on and only if it echoes our
question (spoofing). On a timeout the query goes to the next resolver, which becomes the
preferred one; when every resolver failed the client gets SERVFAIL. TCP queries (rare:
truncated answers, some stubs) try the resolvers in the same order, synchronously.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from agent.filter import dnswire as dw
from agent.filter.tcp import read_frame

Address = tuple[str, int]


class UpstreamStats(Protocol):
    forwarded: int
    timeouts: int
    servfail: int


@dataclass(slots=True)
class Pending:
    client: socket.socket
    addr: Address
    query: bytes  # as the client sent it
    question: dw.Question
    sent: bytes  # what went upstream (new ID, maybe another question)
    expect: bytes  # lowercase wire name the upstream must echo
    target: bytes | None  # the SafeSearch target asked instead of the name, if any
    tried: int
    upstream: int
    deadline: float


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Upstreams:
    def __init__(
        self, addresses: tuple[Address, ...], timeout: float, max_pending: int, stats: UpstreamStats
    ) -> None:
        self.addresses = addresses
        self.timeout = timeout  # per attempt
        self.max_pending = max_pending
        self.stats = stats
        self.pending: dict[int, Pending] = {}
        self.sockets: list[socket.socket] = []
        self._preferred = 0
        self._rng = random.Random(os.urandom(16))

    def connect(self) -> list[socket.socket]:
        """One connected UDP socket per resolver (the caller polls them). A resolver with
        no route yet keeps an unconnected socket: its sends fail and the timeout path fails
        over, as for any resolver that does not answer."""
        for host, port in self.addresses:
            u = socket.socket(family(host), socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            with contextlib.suppress(OSError):
                u.connect((host, port))
            self.sockets.append(u)
        return self.sockets

    def forward(
        self,
        client: socket.socket,
        addr: Address,
        query: bytes,
        question: dw.Question,
        upstream_query: bytes,
        expect: bytes,
        target: bytes | None,
    ) -> None:
        """Send `upstream_query` (the client's query, or its SafeSearch rewrite) upstream;
        the answer comes back through `replies`."""
        pending = self.pending
        if len(pending) >= self.max_pending or not self.sockets:
            # A flood: refuse rather than grow without bound (or run out of IDs); or no
            # resolver known yet (the network is not up).
            self.stats.servfail += 1
            with contextlib.suppress(OSError):
                client.sendto(dw.error_response(query, dw.SERVFAIL, question), addr)
            return
        ident = self._new_id()
        entry = Pending(
            client, addr, query, question, ident.to_bytes(2, "big") + upstream_query[2:], expect,
            target, 0, self._preferred, 0.0,
        )
        self._send(ident, entry, time.monotonic())

    def _new_id(self) -> int:
        """A free upstream query ID (unpredictable: seeded from the OS, never shown to clients)."""
        ident = self._rng.getrandbits(16)
        while ident in self.pending:
            ident = self._rng.getrandbits(16)
        return ident

    def _send(self, ident: int, entry: Pending, now: float) -> None:
        entry.deadline = now + self.timeout
        self.pending[ident] = entry
        self.stats.forwarded += 1
        try:
            self.sockets[entry.upstream].send(entry.sent)
        except OSError:
            # Unreachable right now: let the timeout path fail over.
            return

    def next_deadline(self) -> float | None:
        """When the first query in flight times out (monotonic), None if none is. Every
        attempt goes in (a retry again, at the end) with `now + timeout`, one timeout for
        all: the dict's insertion order is deadline order, so the first entry is due first."""
        for entry in self.pending.values():
            return entry.deadline
        return None

    def expire(self, now: float) -> None:
        """Fail over every query whose attempt timed out (SERVFAIL after the last resolver)."""
        pending = self.pending
        expired = [(i, e) for i, e in pending.items() if e.deadline <= now]
        for ident, entry in expired:
            del pending[ident]
            self.stats.timeouts += 1
            self._retry(entry, now)

    def _retry(self, entry: Pending, now: float) -> None:
        count = len(self.sockets)
        entry.tried += 1
        if entry.tried >= count:
            self.stats.servfail += 1
            with contextlib.suppress(OSError):
                entry.client.sendto(
                    dw.error_response(entry.query, dw.SERVFAIL, entry.question), entry.addr
                )
            return
        entry.upstream = (entry.upstream + 1) % count
        self._preferred = entry.upstream
        ident = int.from_bytes(entry.sent[:2], "big")
        if ident in self.pending:
            ident = self._new_id()
            entry.sent = ident.to_bytes(2, "big") + entry.sent[2:]
        self._send(ident, entry, now)

    def replies(self, sock: socket.socket) -> Iterator[tuple[Pending, bytes]]:
        """The answers waiting on one resolver's socket (a burst), each with its query;
        anything that is not the answer to a query of ours from there is dropped."""
        recv = sock.recv
        pending = self.pending
        sockets = self.sockets
        for _ in range(512):
            try:
                data = recv(65535)
            except BlockingIOError:
                return
            except OSError:  # ICMP unreachable on a connected socket: timeouts handle it
                continue
            if len(data) < 12:
                continue
            ident = (data[0] << 8) | data[1]
            entry = pending.get(ident)
            if entry is None or sockets[entry.upstream] is not sock:
                continue
            expect = entry.expect
            if data[12 : 12 + len(expect)].lower() != expect:
                continue  # not the answer to our question: ignore (spoofing defence)
            del pending[ident]
            yield entry, data

    def ask_tcp(self, query: bytes) -> bytes | None:
        """One query over TCP, the preferred resolver first; None if none answered it."""
        count = len(self.addresses)
        for i in range(count):
            host, port = self.addresses[(self._preferred + i) % count]
            try:
                with socket.create_connection((host, port), timeout=self.timeout) as s:
                    s.sendall(len(query).to_bytes(2, "big") + query)
                    reply = read_frame(s)
            except OSError:
                continue
            if reply is not None and reply[:2] == query[:2]:
                return reply
        return None

    def abandon(self) -> None:
        """SERVFAIL every query in flight (the resolvers are being replaced), then close."""
        for entry in self.pending.values():
            self.stats.servfail += 1
            with contextlib.suppress(OSError):
                entry.client.sendto(
                    dw.error_response(entry.query, dw.SERVFAIL, entry.question), entry.addr
                )
        self.pending.clear()
        self.close()

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets.clear()

