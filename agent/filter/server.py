"""The DNS filter: a forwarder on loopback that answers blocked names itself.

Why a plain epoll loop and not asyncio: the blocked path is "recvfrom, parse, dict hit,
sendto", and asyncio's per-datagram callback machinery costs more than all of that (and
importing it costs ~10 MiB RSS). The loop drains each readable socket in a burst.
TCP (rare: truncated answers, some stubs) is served by a small thread per connection.
When the native library is built (agent/filter/fastpath.py), each UDP wake-up goes to it
first: it answers the listed names a batch at a time and returns the rest to the same
per-datagram Python code, which stays the reference and the fallback.

The active profile is an immutable `Matcher`; `set_profile` swaps it together with a fresh
decision cache, so the cache is keyed on the policy version by construction.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from agent.core.policy import FilterProfile, YouTubeMode
from agent.filter import dnswire as dw
from agent.filter import fastpath
from agent.filter.fastpath import FastPath, FastProfile
from agent.filter.match import BLOCK, REWRITE, VERDICT_FORWARD, ListStore, Matcher, Verdict
from agent.store.events import Event, EventKind, EventSink

log = logging.getLogger(__name__)

Address = tuple[str, int]


class AddressLearner(Protocol):
    """Told the addresses of allowed answers (allowlist-only mode) before the child sees them."""

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
    tcp_connections: int = 64
    max_pending: int = 16384  # in-flight upstream queries (IDs are 16 bits)

    def __post_init__(self) -> None:
        if not self.listen:
            raise ValueError("filter settings: at least one listen address is needed")
        if not self.upstreams:
            raise ValueError("filter settings: at least one upstream resolver is needed")


@dataclass
class Stats:
    queries: int = 0
    blocked: int = 0
    forwarded: int = 0
    rewritten: int = 0
    malformed: int = 0
    timeouts: int = 0
    servfail: int = 0
    events: int = 0
    learned: int = 0
    tcp_queries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending:
    client: socket.socket
    addr: Address
    query: bytes  # as the client sent it
    question: dw.Question
    sent: bytes  # what went upstream (new ID, maybe another question)
    expect: bytes  # lowercase wire name the upstream must echo
    verdict: Verdict
    tried: int
    upstream: int
    deadline: float


_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"


def _parse_addr(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r} is not HOST:PORT")
    host = host.strip("[]")
    socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    return host, int(port)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class DnsFilter:
    """The forwarder. `start()` binds and runs the loop in a thread; `stop()` ends it."""

    def __init__(
        self,
        settings: FilterSettings,
        profile: FilterProfile,
        version: int,
        *,
        events: EventSink | None = None,
        learner: AddressLearner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = ListStore(settings.lists_dir)
        self.events = events
        self.learner = learner
        self.clock = clock
        self.stats = Stats()
        self._matcher = Matcher(profile, version, self.store)
        # The native blocked path, when built (NXDOMAIN answers only: it cannot make the
        # configured block addresses' answers); None runs everything in Python.
        self._fast = None if settings.block_addresses else fastpath.load()
        self._fast_profile = self._fast_profile_for(self._matcher)
        self._cache: dict[bytes, Verdict] = {}
        # Blocked answers by query bytes after the ID: (answer after the ID, name, reason).
        self._answers: dict[bytes, tuple[bytes, bytes, str]] = {}
        self._last_event: dict[bytes, float] = {}
        self._event_queue: list[tuple[bytes, str]] = []  # loop thread only
        self._tcp_events: deque[tuple[bytes, str]] = deque()  # from TCP threads
        self._pending: dict[int, _Pending] = {}
        self._preferred = 0
        self._rng = random.Random(os.urandom(16))
        self._running = False
        self._thread: threading.Thread | None = None
        self._epoll: select.epoll | None = None
        self._handlers: dict[int, Callable[[socket.socket], None]] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._upstream_socks: list[socket.socket] = []
        self._tcp_slots = threading.BoundedSemaphore(settings.tcp_connections)
        self._wake_r, self._wake_w = socket.socketpair()
        self.bound: list[Address] = []

    # ----- profile -------------------------------------------------------------------
    def set_profile(self, profile: FilterProfile, version: int) -> None:
        """Swap in a new profile (and an empty decision cache) atomically."""
        matcher = Matcher(profile, version, self.store)
        fast_profile = self._fast_profile_for(matcher)
        self._matcher, self._cache, self._answers = matcher, {}, {}
        self._fast_profile = fast_profile

    def _fast_profile_for(self, matcher: Matcher) -> FastProfile | None:
        if self._fast is None:
            return None
        parts = matcher.fast_parts()
        return FastProfile(*parts) if parts is not None else None

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

    # ----- lifecycle -----------------------------------------------------------------
    def open(self) -> None:
        """Bind every socket (raises OSError naming the address if one cannot be bound)."""
        ep = select.epoll()
        self._epoll = ep
        for host, wanted_port in self.settings.listen:
            port = wanted_port
            fam = _family(host)
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(fam, kind)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind((host, port))
                except OSError as exc:
                    s.close()
                    self.close()
                    raise OSError(
                        exc.errno, f"cannot bind DNS filter to {host}:{port}: {exc.strerror}"
                    ) from None
                if kind == socket.SOCK_DGRAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                    self._register(s, self._on_client)
                    self.bound.append(s.getsockname()[:2])
                    port = s.getsockname()[1]  # port 0: TCP takes the same port as UDP
                else:
                    s.listen(128)
                    self._register(s, self._on_accept)
        for host, port in self.settings.upstreams:
            u = socket.socket(_family(host), socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            u.connect((host, port))
            self._upstream_socks.append(u)
            self._register(u, self._on_upstream)
        self._register(self._wake_r, _drain_wakeup)

    def _register(self, s: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        assert self._epoll is not None
        s.setblocking(False)
        self._sockets[s.fileno()] = s
        self._handlers[s.fileno()] = handler
        self._epoll.register(s.fileno(), select.EPOLLIN)

    def start(self) -> None:
        """Bind and serve in a background thread."""
        self.open()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="dns-filter", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Bind and serve in this thread until `stop()` (e.g. from a signal handler)."""
        self.open()
        self._running = True
        self._loop()

    def stop(self) -> None:
        self._running = False
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
            self._thread = None
        self.close()

    def close(self) -> None:
        for s in list(self._sockets.values()):
            if s is not self._wake_r:
                s.close()
        self._sockets.clear()
        self._handlers.clear()
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
        while self._running:
            for fd, _ev in ep.poll(0.1):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(sockets[fd])
            now = time.monotonic()
            if now >= next_tick:
                self._tick(now)
                next_tick = now + 0.1
            elif self._event_queue or self._tcp_events:
                self._flush_events()

    def _tick(self, now: float) -> None:
        pending = self._pending
        expired = [(i, e) for i, e in pending.items() if e.deadline <= now]
        for ident, entry in expired:
            del pending[ident]
            self.stats.timeouts += 1
            self._retry(entry, now)
        self._flush_events()

    def _flush_events(self) -> None:
        tcp = self._tcp_events
        while tcp:
            self._note_blocked(*tcp.popleft())  # rate-limited here, in the loop thread
        queue, self._event_queue = self._event_queue, []
        if self.events is None or not queue:
            return
        at = self.clock()
        for wire, reason in queue:
            self.events.record(
                Event(EventKind.DNS_BLOCKED, at, {"domain": dw.decode_name(wire), "reason": reason})
            )
            self.stats.events += 1

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
        events = self.events is not None
        answer = self._answer_datagram
        for _ in range(512 // fastpath.BATCH):
            n, left = fast.drain(fd, profile, events)
            if n == 0:
                return
            stats.queries += n
            stats.blocked += n - len(left)
            if events:
                reasons = profile.reasons
                for wire, reason in fast.blocked_names():
                    self._note_blocked(wire, reasons[reason])
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
            if self.events is not None:
                self._note_blocked(hit[1], hit[2])
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
        if self.events is not None:
            self._note_blocked(qname, v.reason)

    def _blocked_answer(self, data: bytes, q: dw.Question) -> bytes:
        if self.settings.block_addresses and q.qtype in (dw.TYPE_A, dw.TYPE_AAAA):
            st = self.settings
            return dw.address_answer(data, q, st.block_addresses, st.block_ttl)
        return dw.nxdomain(data, q)

    def _note_blocked(self, wire: bytes, reason: str) -> None:
        if self.events is None:
            return
        now = time.monotonic()
        last = self._last_event.get(wire)
        if last is not None and now - last < self.settings.event_interval:
            return
        if len(self._last_event) >= 16384:
            self._last_event.clear()
        self._last_event[wire] = now
        self._event_queue.append((wire, reason))

    def _forward(
        self, sock: socket.socket, addr: Address, data: bytes, q: dw.Question, v: Verdict
    ) -> None:
        if v.action == REWRITE and q.qtype in (dw.TYPE_A, dw.TYPE_AAAA, dw.TYPE_HTTPS):
            self.stats.rewritten += 1
            upstream_query, expect = dw.with_question(data, q, v.target), v.target
        else:
            upstream_query, expect = data, q.qname
            v = VERDICT_FORWARD if v.action == REWRITE else v
        pending = self._pending
        if len(pending) >= self.settings.max_pending:
            # A flood: refuse rather than grow without bound (or run out of IDs).
            self.stats.servfail += 1
            with contextlib.suppress(OSError):
                sock.sendto(dw.error_response(data, dw.SERVFAIL, q), addr)
            return
        ident = self._new_id()
        entry = _Pending(
            sock, addr, data, q, ident.to_bytes(2, "big") + upstream_query[2:], expect, v,
            0, self._preferred, 0.0,
        )
        self._send_upstream(ident, entry, time.monotonic())

    def _new_id(self) -> int:
        """A free upstream query ID (unpredictable: seeded from the OS, never shown to clients)."""
        ident = self._rng.getrandbits(16)
        while ident in self._pending:
            ident = self._rng.getrandbits(16)
        return ident

    def _send_upstream(self, ident: int, entry: _Pending, now: float) -> None:
        entry.deadline = now + self.settings.timeout
        self._pending[ident] = entry
        self.stats.forwarded += 1
        try:
            self._upstream_socks[entry.upstream].send(entry.sent)
        except OSError:
            # Unreachable right now: let the timeout path fail over.
            return

    def _retry(self, entry: _Pending, now: float) -> None:
        count = len(self._upstream_socks)
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
        if ident in self._pending:
            ident = self._new_id()
            entry.sent = ident.to_bytes(2, "big") + entry.sent[2:]
        self._send_upstream(ident, entry, now)

    # ----- UDP from upstreams --------------------------------------------------------
    def _on_upstream(self, sock: socket.socket) -> None:
        recv = sock.recv
        pending = self._pending
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
            if entry is None or self._upstream_socks[entry.upstream] is not sock:
                continue
            expect = entry.expect
            if data[12 : 12 + len(expect)].lower() != expect:
                continue  # not the answer to our question: ignore (spoofing defence)
            del pending[ident]
            try:
                reply = self._reply_for(entry, data)
            except dw.WireError:
                reply = dw.error_response(entry.query, dw.SERVFAIL, entry.question)
            with contextlib.suppress(OSError):
                entry.client.sendto(reply, entry.addr)

    def _reply_for(self, entry: _Pending, data: bytes) -> bytes:
        """The client's answer from an upstream one (learning addresses first if needed)."""
        if entry.verdict.action == REWRITE:
            rcode, _qn, _qt, records = dw.parse_response(data)
            self._learn(records)
            target = entry.verdict.target
            return dw.cname_answer(entry.query, entry.question, target, rcode, records)
        if self._matcher.allowlist_only and self.learner is not None:
            self._learn(dw.parse_response(data)[3])
        return entry.query[:2] + data[2:]

    def _learn(self, records: list[dw.Record]) -> None:
        if self.learner is None or not self._matcher.allowlist_only:
            return
        found = [
            (r.rdata, r.ttl)
            for r in records
            if (r.rtype == dw.TYPE_A and len(r.rdata) == 4)
            or (r.rtype == dw.TYPE_AAAA and len(r.rdata) == 16)
        ]
        if found:
            self.learner.learn(found)
            self.stats.learned += len(found)

    # ----- TCP -----------------------------------------------------------------------
    def _on_accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _addr = sock.accept()
            except BlockingIOError:
                return
            if not self._tcp_slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(10)
            while self._running:
                data = _read_frame(conn)
                if data is None:
                    return
                reply = self.answer_tcp(data)
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return
        finally:
            conn.close()
            self._tcp_slots.release()

    def answer_tcp(self, data: bytes) -> bytes | None:
        """One query over TCP, answered synchronously (used by the TCP threads)."""
        self.stats.tcp_queries += 1
        try:
            q = dw.parse_query(data)
        except dw.WireError as exc:
            return dw.error_response(data, exc.rcode) if exc.rcode is not None else None
        v = self._matcher.verdict(q.qname)
        if v.action == BLOCK:
            self._note_blocked_threadsafe(q.qname, v.reason)
            return self._blocked_answer(data, q)
        rewrite = v.action == REWRITE and q.qtype in (dw.TYPE_A, dw.TYPE_AAAA, dw.TYPE_HTTPS)
        sent = dw.with_question(data, q, v.target) if rewrite else data
        reply = self._tcp_upstream(sent)
        if reply is None:
            return dw.error_response(data, dw.SERVFAIL, q)
        try:
            if rewrite:
                rcode, _n, _t, records = dw.parse_response(reply)
                self._learn(records)
                return dw.cname_answer(data, q, v.target, rcode, records)
            if self._matcher.allowlist_only and self.learner is not None:
                self._learn(dw.parse_response(reply)[3])
        except dw.WireError:
            return dw.error_response(data, dw.SERVFAIL, q)
        return data[:2] + reply[2:]

    def _note_blocked_threadsafe(self, wire: bytes, reason: str) -> None:
        # deque.append/popleft are thread-safe; the loop thread drains and rate-limits.
        if self.events is not None:
            self._tcp_events.append((wire, reason))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"e")

    def _tcp_upstream(self, query: bytes) -> bytes | None:
        count = len(self.settings.upstreams)
        for i in range(count):
            host, port = self.settings.upstreams[(self._preferred + i) % count]
            try:
                with socket.create_connection((host, port), timeout=self.settings.timeout) as s:
                    s.sendall(len(query).to_bytes(2, "big") + query)
                    reply = _read_frame(s)
            except OSError:
                continue
            if reply is not None and reply[:2] == query[:2]:
                return reply
        return None


def _drain_wakeup(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        sock.recv(4096)


def _read_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_frame(conn: socket.socket) -> bytes | None:
    head = _read_exact(conn, 2)
    if head is None:
        return None
    return _read_exact(conn, struct.unpack("!H", head)[0])


# ----- standalone entry point (QEMU test, benchmarks) ----------------------------------
def profile_from_json(path: Path) -> FilterProfile:
    """A FilterProfile from a small JSON object; ValueError naming the bad key."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read profile JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: profile must be a JSON object")
    known = {
        "block_categories", "allowlist_only", "safesearch", "youtube",
        "allow_domains", "block_domains",
    }
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown profile keys {sorted(unknown)}")

    def names(key: str) -> frozenset[str]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ValueError(f"{path}: {key} must be a list of strings")
        return frozenset(value)

    for key in ("allowlist_only", "safesearch"):
        if not isinstance(raw.get(key, False), bool):
            raise ValueError(f"{path}: {key} must be true or false")
    try:
        youtube = YouTubeMode(raw.get("youtube", "off"))
    except ValueError:
        raise ValueError(f"{path}: youtube must be off, moderate or strict") from None
    return FilterProfile(
        block_categories=names("block_categories"),
        allowlist_only=bool(raw.get("allowlist_only", False)),
        allowlist_only_during=frozenset(),
        safesearch=bool(raw.get("safesearch", False)),
        youtube=youtube,
        allow_domains=names("allow_domains"),
        block_domains=names("block_domains"),
    )


class JsonLinesEventSink:
    """Appends events as JSON lines to a file (the standalone filter's journal stand-in)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: Event) -> None:
        line = json.dumps({"kind": str(event.kind), "at": event.at.isoformat(), **event.data})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.filter.server", description="Run the DNS filter standalone."
    )
    parser.add_argument("--lists", type=Path, required=True, help="compiled list directory")
    parser.add_argument("--upstream", action="append", required=True, help="IP:PORT (repeat)")
    parser.add_argument("--listen", action="append", default=None, help="IP:PORT (repeat)")
    parser.add_argument("--profile-json", type=Path, required=True)
    parser.add_argument("--version", type=int, default=1, help="policy version")
    parser.add_argument("--events", type=Path, help="append DNS_BLOCKED events here (JSON lines)")
    parser.add_argument("--nft-learn", action="store_true",
                        help="allowlist-only: add answer addresses to the nft allow sets")
    parser.add_argument("--ready-file", type=Path, help="write the bound addresses here")
    parser.add_argument("--child-uid", type=int, action="append",
                        help="also install the nft table for this uid (removed on exit)")
    parser.add_argument("--cache-size", type=int, default=16384)
    parser.add_argument("--timeout", type=float, default=1.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        settings = FilterSettings(
            listen=tuple(_parse_addr(a) for a in (args.listen or ["127.0.0.1:53"])),
            upstreams=tuple(_parse_addr(a) for a in args.upstream),
            lists_dir=args.lists,
            cache_size=args.cache_size,
            timeout=args.timeout,
        )
        profile = profile_from_json(args.profile_json)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sink = JsonLinesEventSink(args.events) if args.events else None
    if args.child_uid:
        return _run_with_table(args, settings, profile, sink)
    learner: AddressLearner | None = None
    if args.nft_learn:  # imported only when used: ctypes and subprocess cost RSS
        learner = importlib.import_module("agent.filter.nft").NftSetLearner()
    try:
        flt = DnsFilter(settings, profile, args.version, events=sink, learner=learner)
        flt.open()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: setattr(flt, "_running", False))
    signal.signal(signal.SIGINT, lambda *_: setattr(flt, "_running", False))
    if args.ready_file:
        args.ready_file.write_text(json.dumps([list(a) for a in flt.bound]))
    flt._running = True
    try:
        flt._loop()
    finally:
        flt.close()
    return 0


def _run_with_table(
    args: argparse.Namespace,
    settings: FilterSettings,
    profile: FilterProfile,
    sink: EventSink | None,
) -> int:
    """The filter plus the nft table, as the daemon runs them (NetworkFilter)."""
    service = importlib.import_module("agent.filter.service")
    nft = importlib.import_module("agent.filter.nft")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        net = service.NetworkFilter(settings, tuple(args.child_uid), events=sink)
        net.start(profile, args.version)
    except (ValueError, OSError, nft.NftError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.ready_file:
            args.ready_file.write_text(json.dumps([list(a) for a in net.dns.bound]))
        done.wait()
    finally:
        net.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
