"""The DNS filter: a forwarder on loopback that answers blocked names itself.

Why a plain epoll loop and not asyncio: the blocked path is "recvfrom, parse, dict hit,
sendto", and asyncio's per-datagram callback machinery costs more than all of that (and
importing it costs ~10 MiB RSS). The loop drains each readable socket in a burst.
When the native library is built (agent/filter/fastpath.py), each UDP wake-up goes to it
first: it answers the listed names a batch at a time and returns the rest to the same
per-datagram Python code, which stays the reference and the fallback. Forwarding and
failover live in `agent.filter.upstream`, TCP in `agent.filter.tcp`, and what a client
is answered (blocked, rewritten, learned) in the pure `agent.filter.reply`, shared by
both transports.

The active profile is an immutable `Matcher`; `set_profile` swaps it together with a fresh
decision cache, so the cache is keyed on the policy version by construction. Every
DNS_BLOCKED event carries the time of the `clock` the filter is given (the daemon's
trusted time, as every other event). The loop never writes an event: it counts blocked
lookups in a bounded `BlockedTally` and hands it, every tick, to the `EventBatcher`, whose
own thread writes them to the sink in one batch a second (`agent.filter.eventbatch`: what
a crash can lose, what a flood drops).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agent.core.policy import FilterProfile
from agent.filter import dnswire as dw
from agent.filter import fastpath
from agent.filter.eventbatch import BlockedTally, EventBatcher
from agent.filter.fastpath import FastPath, FastProfile
from agent.filter.match import BLOCK, ListStore, Matcher, Verdict
from agent.filter.reply import ChainBlock, blocked_answer, client_reply, rewrite_target
from agent.filter.tcp import TcpService
from agent.filter.upstream import Address, Upstreams, family
from agent.store.events import Event, EventKind, EventSink

log = logging.getLogger("minormode.filter")


class AddressLearner(Protocol):
    """Told the addresses of every allowed answer (the child's closed egress, in every mode)
    before the child sees them."""

    def learn(self, addresses: Sequence[tuple[bytes, int]]) -> None:
        """(4- or 16-byte address, TTL seconds) pairs; must finish before returning."""


@dataclass(frozen=True)
class FilterSettings:
    listen: tuple[Address, ...]
    upstreams: tuple[Address, ...]
    lists_dir: Path
    timeout: float = 1.5  # per upstream attempt
    block_addresses: tuple[bytes, ...] = ()  # empty: NXDOMAIN; else A/AAAA with these
    block_ttl: int = 60
    cache_size: int = 16384
    event_interval: float = 60.0  # at most one DNS_BLOCKED event per name this often
    event_batch: float = 1.0  # seconds between the batcher's writes (one transaction each)
    event_names: int = 256  # distinct blocked names the loop counts per tick (0.1 s)
    tcp_connections: int = 64
    max_pending: int = 16384  # in-flight upstream queries (IDs are 16 bits)

    def __post_init__(self) -> None:
        # No upstreams is allowed: the network's resolvers may not be known yet
        # (DnsFilter.set_upstreams brings them); meanwhile forwarded names get SERVFAIL.
        if not self.listen:
            raise ValueError("filter settings: at least one listen address is needed")


@dataclass
class Stats:
    """What the filter did since it started (tests, benchmarks; counted, never logged)."""

    queries: int = 0
    blocked: int = 0
    forwarded: int = 0
    rewritten: int = 0
    cname_blocked: int = 0  # forwarded answers whose CNAME chain reached a blocked name
    malformed: int = 0
    timeouts: int = 0
    servfail: int = 0
    events: int = 0  # DNS_BLOCKED events written (by the batcher's thread)
    events_dropped: int = 0  # blocked lookups never itemised: a flood (see eventbatch)
    learned: int = 0
    tcp_queries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


TICK = 0.1  # seconds between the loop's hand-offs of blocked lookups and timeout checks
_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"


class DnsFilter:
    """The forwarder. `start()` binds and serves in a thread of its own, `run()` in the
    calling thread; `stop()` (from any thread, or a signal handler) ends either."""

    def __init__(
        self,
        settings: FilterSettings,
        profile: FilterProfile,
        version: int,
        *,
        clock: Callable[[], datetime],
        events: EventSink | None = None,
        learner: AddressLearner | None = None,
    ) -> None:
        """`clock` stamps DNS_BLOCKED events: the daemon passes its trusted time."""
        self.settings = settings
        self.store = ListStore(settings.lists_dir)
        self.events = events
        self.learner = learner
        self.clock = clock
        self.stats = Stats()
        self._matcher = Matcher(profile, version, self.store)
        self._missing_reported: tuple[str, ...] = ()
        self._report_missing_lists()
        # The native blocked path, when built (NXDOMAIN answers only: it cannot make the
        # configured block addresses' answers); None runs everything in Python.
        self._fast = None if settings.block_addresses else fastpath.load()
        self._fast_profile = self._fast_profile_for(self._matcher)
        self._cache: dict[bytes, Verdict] = {}
        # Blocked answers by query bytes after the ID: (answer after the ID, name, reason).
        self._answers: dict[bytes, tuple[bytes, bytes, str]] = {}
        # Blocked lookups: counted by the loop (its tally), written by the batcher's thread.
        self._batcher = None if events is None else EventBatcher(
            events, clock, interval=settings.event_batch, rate_limit=settings.event_interval,
            counters=self.stats)
        self._tally = None if events is None else BlockedTally(settings.event_names)
        self._upstreams = Upstreams(
            settings.upstreams, settings.timeout, settings.max_pending, self.stats
        )
        self._tcp = TcpService(self.answer_tcp, settings.tcp_connections, self._serving)
        self._stopped = False
        self._runner: threading.Thread | None = None  # the thread in `run()`
        self._epoll: select.epoll | None = None
        self._handlers: dict[int, Callable[[socket.socket], None]] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._next_upstreams: tuple[Address, ...] | None = None  # set_upstreams -> the loop
        self.bound: list[Address] = []

    # ----- profile -------------------------------------------------------------------
    def set_profile(self, profile: FilterProfile, version: int) -> None:
        """Swap in a new profile (and an empty decision cache) atomically."""
        matcher = Matcher(profile, version, self.store)
        fast_profile = self._fast_profile_for(matcher)
        self._matcher, self._cache, self._answers = matcher, {}, {}
        self._fast_profile = fast_profile
        self._report_missing_lists()

    @property
    def missing_lists(self) -> tuple[str, ...]:
        """Blocked categories with no compiled list (they block nothing)."""
        return self._matcher.missing

    def _report_missing_lists(self) -> None:
        """Say, when it changes, which blocked categories block nothing for want of a list:
        an error in the log and a FILTER_LIST_MISSING event (the guardian's tamper signs)."""
        missing = self._matcher.missing
        if missing == self._missing_reported:
            return
        self._missing_reported = missing
        if not missing:
            log.info("every blocked category has a list again")
            return
        for category in missing:
            log.error("%s: no list installed in %s; its names are NOT blocked",
                      category, self.settings.lists_dir)
        if self.events is not None:
            self.events.record(Event(EventKind.FILTER_LIST_MISSING, self.clock(),
                                     {"categories": list(missing)}))

    def _fast_profile_for(self, matcher: Matcher) -> FastProfile | None:
        if self._fast is None:
            return None
        parts = matcher.fast_parts()
        return FastProfile(*parts) if parts is not None else None

    @property
    def profile(self) -> FilterProfile:
        """The profile in force."""
        return self._matcher.profile

    @property
    def fast_path(self) -> FastPath | None:
        """The native blocked path in use, if any (tests check that it really is)."""
        return self._fast

    @property
    def version(self) -> int:
        return self._matcher.version

    def verdict(self, wire: bytes) -> Verdict:
        """The cached decision for a lowercase wire name under the active profile."""
        cache = self._cache
        v = cache.get(wire)
        if v is None:
            v = self._matcher.verdict(wire)
            if len(cache) >= self.settings.cache_size:
                # Start afresh (amortised O(1); FIFO eviction from a dict degrades to O(n)).
                cache = self._cache = {}
            cache[wire] = v
        return v

    # ----- upstreams -----------------------------------------------------------------
    @property
    def upstreams(self) -> tuple[Address, ...]:
        """The resolvers forwarded to now (or about to be, after `set_upstreams`)."""
        pending = self._next_upstreams
        return pending if pending is not None else self._upstreams.addresses

    def set_upstreams(self, addresses: tuple[Address, ...]) -> None:
        """Forward to these resolvers from now on (the network changed), from any thread:
        the loop swaps its sockets when it wakes; queries in flight get SERVFAIL."""
        self._next_upstreams = addresses
        with contextlib.suppress(OSError):
            self._wake_w.send(b"u")

    def _swap_upstreams(self) -> None:
        addresses, self._next_upstreams = self._next_upstreams, None
        if addresses is None or addresses == self._upstreams.addresses:
            return
        old = self._upstreams
        if self._epoll is not None:
            for s in old.sockets:
                fd = s.fileno()
                self._epoll.unregister(fd)
                del self._sockets[fd], self._handlers[fd]
        old.abandon()
        self._upstreams = Upstreams(addresses, self.settings.timeout, self.settings.max_pending,
                                    self.stats)
        if self._epoll is not None:
            for u in self._upstreams.connect():
                self._register(u, self._on_upstream)

    # ----- lifecycle -----------------------------------------------------------------
    def open(self) -> None:
        """Bind every socket (raises OSError naming the address if one cannot be bound)."""
        ep = select.epoll()
        self._epoll = ep
        for host, wanted_port in self.settings.listen:
            try:
                udp, tcp = bind_pair(host, wanted_port)
            except OSError:
                self.close()
                raise
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._register(udp, self._on_client)
            self.bound.append(udp.getsockname()[:2])
            tcp.listen(128)
            self._register(tcp, self._tcp.on_accept)
        for u in self._upstreams.connect():
            self._register(u, self._on_upstream)
        self._register(self._wake_r, _drain_wakeup)

    def _register(self, s: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        assert self._epoll is not None
        s.setblocking(False)
        self._sockets[s.fileno()] = s
        self._handlers[s.fileno()] = handler
        self._epoll.register(s.fileno(), select.EPOLLIN)

    def start(self) -> None:
        """Bind, then serve in a background thread until `stop()`."""
        self.open()
        self._runner = threading.Thread(target=self.run, name="dns-filter", daemon=True)
        self._runner.start()

    def run(self) -> None:
        """Serve in this thread until `stop()` (binding first unless `open()` was called);
        the event batcher runs meanwhile, and writes what is counted on the way out."""
        self._runner = threading.current_thread()
        if self._stopped:  # stopped before it ran (a signal at start-up)
            self.close()
            return
        if self._epoll is None:
            self.open()
        if self._batcher is not None:
            self._batcher.start()
        try:
            self._loop()
        finally:
            try:
                self._hand_tally()
                if self._batcher is not None:
                    self._batcher.stop()
            finally:
                self.close()

    def stop(self) -> None:
        """End `run()`. From a signal handler on the serving thread this only asks (the
        loop closes itself); from another thread it waits for the loop, then closes."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        runner = self._runner
        if runner is threading.current_thread():
            return
        if runner is not None:
            runner.join(5)
            self._runner = None
        self.close()

    def _serving(self) -> bool:
        return not self._stopped

    def close(self) -> None:
        for s in list(self._sockets.values()):
            if s is not self._wake_r:
                s.close()
        self._sockets.clear()
        self._handlers.clear()
        self._upstreams.close()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    # ----- the loop ------------------------------------------------------------------
    def _loop(self) -> None:
        ep = self._epoll
        assert ep is not None
        handlers = self._handlers
        sockets = self._sockets
        next_tick = 0.0
        while not self._stopped:
            for fd, _ev in ep.poll(self._wait(next_tick)):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(sockets[fd])
            if self._next_upstreams is not None:
                self._swap_upstreams()
            now = time.monotonic()
            if now >= next_tick:
                self._upstreams.expire(now)
                self._hand_tally()
                next_tick = now + TICK

    def _wait(self, next_tick: float) -> float:
        """How long the loop may sleep: until its next tick that has work (the first query
        in flight to time out, or blocked lookups to hand to the batcher; no earlier than
        `next_tick`, so timeouts are checked at most every TICK, as before); with neither,
        until a socket or `stop()`/`set_upstreams` wakes it (-1: no timeout)."""
        due = self._upstreams.next_deadline()
        if self._tally:
            due = next_tick
        elif due is None:
            return -1
        return max(0.0, max(due, next_tick) - time.monotonic())

    def _hand_tally(self) -> None:
        """Give the batcher what the loop counted since the last tick (never blocks)."""
        tally, batcher = self._tally, self._batcher
        if tally and batcher is not None:
            batcher.hand(tally)
            self._tally = BlockedTally(self.settings.event_names)

    # ----- UDP from clients ----------------------------------------------------------
    def _on_client(self, sock: socket.socket) -> None:
        fast, profile = self._fast, self._fast_profile
        if fast is not None and profile is not None:
            self._on_client_fast(sock, fast, profile)
            return
        recvfrom = sock.recvfrom
        answer = self._answer_datagram
        stats = self.stats
        for _ in range(512):
            try:
                data, addr = recvfrom(4096)
            except BlockingIOError:
                return
            stats.queries += 1
            answer(sock, data, addr)

    def _on_client_fast(self, sock: socket.socket, fast: FastPath, profile: FastProfile) -> None:
        """The native library answers listed names a batch at a time; the rest come back
        here unchanged and take the Python path (the same 512-datagram burst bound)."""
        fd = sock.fileno()
        stats = self.stats
        answer = self._answer_datagram
        for _ in range(512 // fastpath.BATCH):
            tally = self._tally
            names = tally is not None and not tally.full  # a full tally: count, no names
            n, left = fast.drain(fd, profile, names)
            if n == 0:
                return
            stats.queries += n
            stats.blocked += n - len(left)
            if names:
                assert tally is not None
                add, reasons = tally.add, profile.reasons
                for wire, reason in fast.blocked_names():
                    add(wire, reasons[reason])
            elif tally is not None:
                tally.drop(n - len(left))
            for data, addr in left:
                answer(sock, data, addr)
            if n < fastpath.BATCH:
                return

    def _answer_datagram(self, sock: socket.socket, data: bytes, addr: Address) -> None:
        """Judge one query and answer it, or forward it (counted by the caller)."""
        stats = self.stats
        answers = self._answers
        # Repeated blocked query (same bytes but the ID): the stored answer, no parsing.
        hit = answers.get(data[2:])
        if hit is not None:
            stats.blocked += 1
            try:  # noqa: SIM105 - contextlib.suppress costs an object per query here
                sock.sendto(data[:2] + hit[0], addr)
            except OSError:
                pass
            tally = self._tally
            if tally is not None:
                tally.add(hit[1], hit[2])
            return
        try:
            q = dw.parse_query(data)
        except dw.WireError as exc:
            stats.malformed += 1
            if exc.rcode is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(dw.error_response(data, exc.rcode), addr)
            return
        qname = q[0]
        cache = self._cache
        v = cache.get(qname)
        if v is None:
            v = self.verdict(qname)
        if v.action != BLOCK:
            self._forward(sock, addr, data, q, v)
            return
        stats.blocked += 1
        if not self.settings.block_addresses:
            # Inline NXDOMAIN (same bytes as dw.nxdomain): the hottest Python path.
            end = q[3]
            reply = (
                data[:2] + bytes((0x80 | (data[2] & 0x79), 0x83))
                + (_COUNTS_EDNS + data[12:end] + dw.OPT_RR if q[4] else _COUNTS + data[12:end])
            )
        else:
            reply = self._blocked_answer(data, q)
        if len(answers) >= self.settings.cache_size:
            answers = self._answers = {}
        answers[data[2:]] = (reply[2:], qname, v.reason)
        try:  # noqa: SIM105
            sock.sendto(reply, addr)
        except OSError:
            pass
        tally = self._tally
        if tally is not None:
            tally.add(qname, v.reason)

    def _blocked_answer(self, data: bytes, q: dw.Question) -> bytes:
        return blocked_answer(data, q, self.settings.block_addresses, self.settings.block_ttl)

    def _forward(
        self, sock: socket.socket, addr: Address, data: bytes, q: dw.Question, v: Verdict
    ) -> None:
        target = rewrite_target(v, q)
        if target is not None:
            self.stats.rewritten += 1
            self._upstreams.forward(sock, addr, data, q, dw.with_question(data, q, target),
                                    target, target)
        else:
            self._upstreams.forward(sock, addr, data, q, data, q.qname, None)

    # ----- UDP from upstreams --------------------------------------------------------
    def _on_upstream(self, sock: socket.socket) -> None:
        for entry, data in self._upstreams.replies(sock):
            reply, blocked = self._reply(entry.query, entry.question, entry.target, data)
            with contextlib.suppress(OSError):
                entry.client.sendto(reply, entry.addr)
            tally = self._tally
            if blocked is not None and tally is not None:
                tally.add(*blocked)

    def _reply(
        self, query: bytes, q: dw.Question, target: bytes | None, upstream: bytes
    ) -> tuple[bytes, ChainBlock | None]:
        """The client's answer from an upstream one, its addresses learned first (the
        child reaches no other address); the blocked answer if its CNAME chain reaches a blocked
        name (returned too, for the event); SERVFAIL if the answer does not parse."""
        matcher = self._matcher
        learning = self.learner is not None
        judge = matcher.chain_verdict if matcher.allowlist_only else self.verdict
        try:
            reply, learned, blocked = client_reply(query, q, target, upstream, learning, judge)
        except dw.WireError:
            return dw.error_response(query, dw.SERVFAIL, q), None
        if blocked is not None:
            self.stats.cname_blocked += 1
            return self._blocked_answer(query, q), blocked
        if learned and self.learner is not None:
            self.learner.learn(learned)
            self.stats.learned += len(learned)
        return reply, None

    # ----- TCP -----------------------------------------------------------------------
    def answer_tcp(self, data: bytes) -> bytes | None:
        """One query over TCP, answered synchronously (used by the TCP threads)."""
        self.stats.tcp_queries += 1
        try:
            q = dw.parse_query(data)
        except dw.WireError as exc:
            return dw.error_response(data, exc.rcode) if exc.rcode is not None else None
        v = self._matcher.verdict(q.qname)
        if v.action == BLOCK:
            self._note_blocked_elsewhere(q.qname, v.reason)
            return self._blocked_answer(data, q)
        target = rewrite_target(v, q)
        reply = self._upstreams.ask_tcp(data if target is None else dw.with_question(data, q, target))
        if reply is None:
            return dw.error_response(data, dw.SERVFAIL, q)
        answer, blocked = self._reply(data, q, target, reply)
        if blocked is not None:
            self._note_blocked_elsewhere(*blocked)
        return answer

    def _note_blocked_elsewhere(self, wire: bytes, reason: str) -> None:
        """A blocked lookup seen off the loop thread (TCP): a tally of its own, handed at once."""
        if self._batcher is not None:
            tally = BlockedTally(1)
            tally.add(wire, reason)
            self._batcher.hand(tally)


def bind_pair(host: str, wanted_port: int, attempts: int = 8) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same port; OSError naming the address if not.
    Port 0 (tests): the UDP socket picks a free port, and the TCP socket takes the same one;
    when another program holds that port for TCP (an outgoing connection's ephemeral port),
    try another port instead of failing."""
    fam = family(host)
    for attempt in range(attempts if wanted_port == 0 else 1):
        socks: list[socket.socket] = []
        port = wanted_port
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(fam, kind)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
                port = s.getsockname()[1]  # port 0: TCP takes the same port as UDP
            return socks[0], socks[1]
        except OSError as exc:
            for s in socks:
                s.close()
            if wanted_port == 0 and exc.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                continue
            raise OSError(
                exc.errno, f"cannot bind DNS filter to {host}:{port}: {exc.strerror}"
            ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _drain_wakeup(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        sock.recv(4096)

