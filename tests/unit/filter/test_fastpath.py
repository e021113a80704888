"""The native blocked path against the Python path (the reference): same hash, same reply
bytes for every kind of query, really used, and following profile swaps at once.

The library is built by scripts/setup (`python -m agent.filter.fastpath build`). Without
it these tests skip, unless MINORMODE_REQUIRE_FASTPATH=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.filter import dnswire as dw
from agent.filter import fastpath
from agent.filter.hashlist import name_hash
from agent.filter.server import DnsFilter

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def lib() -> fastpath.FastPath:
    loaded = fastpath.load()
    if loaded is None:
        if os.environ.get("MINORMODE_REQUIRE_FASTPATH") == "1":
            pytest.fail(f"the DNS fast path library is missing ({fastpath.LIBRARY}): "
                        "run `python -m agent.filter.fastpath build`")
        pytest.skip("the DNS fast path library is not built")
    return loaded


@given(st.binary(max_size=400))
def test_blake2b_in_c_is_name_hash(lib: fastpath.FastPath, data: bytes) -> None:
    assert lib.name_hash(data) == name_hash(data)


def _exchange(addr: tuple[str, int], datagrams: list[bytes], wait: float = 0.5) -> list[bytes | None]:
    """Send each datagram from its own socket (so replies cannot be confused), then
    collect every reply; a datagram that gets none within `wait` seconds gives None."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in datagrams]
    try:
        for s, msg in zip(socks, datagrams, strict=True):
            s.sendto(msg, addr)
        deadline = time.monotonic() + wait
        out: list[bytes | None] = []
        for s in socks:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                out.append(s.recv(65535))
            except TimeoutError:
                out.append(None)
        return out
    finally:
        for s in socks:
            s.close()


def _pair(make_filter: Callable[..., DnsFilter], monkeypatch: pytest.MonkeyPatch,
          **kw: Any) -> tuple[DnsFilter, DnsFilter]:
    chosen = os.environ.get(fastpath.ENV_PATH)  # e.g. a library built elsewhere
    monkeypatch.setenv(fastpath.ENV_PATH, "off")
    reference = make_filter(**kw)
    if chosen is None:
        monkeypatch.delenv(fastpath.ENV_PATH)
    else:
        monkeypatch.setenv(fastpath.ENV_PATH, chosen)
    fast = make_filter(**kw)
    assert reference.fast_path is None and fast.fast_path is not None
    return reference, fast


def _queries() -> list[bytes]:
    q = dw.build_query
    edns = q("porn.example", ident=7, edns=True)
    queries = [
        q("porn.example", ident=1),                 # listed (adult)
        q("WWW.Porn.EXAMPLE", ident=2),             # a parent is listed, mixed case
        q("deep.a.b.casino.test", qtype=dw.TYPE_AAAA, ident=3),  # gambling, a far parent
        edns,                                       # EDNS: the OPT comes back
        q("ok.porn.example", ident=4),              # the guardian's allow beats the list
        q("homework-cheats.test", ident=5),         # the guardian's own block list
        q("forwarded.example", ident=6),            # not listed: forwarded
        q("use-application-dns.net", ident=8),      # a canary: Python's reason "bypass"
        q("www.google.com", ident=9),               # SafeSearch rewrite
        q("com", ident=10),                         # a bare TLD is never listed
        q("chat.social.test", ident=11),            # a category this profile does not block
        q("porn.example", ident=12, qtype=dw.TYPE_HTTPS),
    ]
    bad = [
        b"\x00\x01\x01",                                        # shorter than a header
        edns[:-3],                                              # OPT truncated
        q("porn.example", ident=13)[:-2],                       # class missing
        bytearray(q("porn.example", ident=14)),                 # made a response below
        q("porn.example", ident=15)[:12] + b"\xc0\x0c\x00\x01\x00\x01",  # compression loop
        q("porn.example", ident=16)[:4] + b"\x00\x02" + q("porn.example")[6:],  # 2 questions
        q("porn.example", ident=17)[:-2] + b"\x00\x03",         # class CH
        q("porn.example", ident=18)[:2] + b"\x28\x00" + q("porn.example")[4:],  # opcode 5
    ]
    bad[3][2] |= 0x80
    return queries + [bytes(b) for b in bad]


def test_replies_are_byte_identical_to_the_python_path(
    lib: fastpath.FastPath, make_filter: Callable[..., DnsFilter], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, fast = _pair(make_filter, monkeypatch, deny=("homework-cheats.test",), safesearch=True)
    queries = _queries()
    expected = _exchange(reference.bound[0], queries)
    got = _exchange(fast.bound[0], queries)
    for query, want, have in zip(queries, expected, got, strict=True):
        assert have == want, f"query {query!r}"
    assert expected[0] is not None and expected[0][3] & 0xF == dw.NXDOMAIN
    assert fast.fast_path is not None and fast.fast_path.drained >= len(queries)

    def counts(f: DnsFilter) -> tuple[int, int, int]:
        return f.stats.queries, f.stats.blocked, f.stats.malformed

    # the native path counts a batch after sending its replies: wait for it, bounded
    deadline = time.monotonic() + 5
    while counts(fast) != counts(reference) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counts(fast) == counts(reference)


@pytest.fixture
def pair(lib: fastpath.FastPath, make_filter: Callable[..., DnsFilter],
         monkeypatch: pytest.MonkeyPatch) -> tuple[DnsFilter, DnsFilter]:
    return _pair(make_filter, monkeypatch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=4), st.randoms())
def test_mutated_datagrams_get_the_same_treatment(
    pair: tuple[DnsFilter, DnsFilter], chunks: list[bytes], rnd: random.Random
) -> None:
    """Valid queries with bytes flipped or cut, and garbage: no crash, same reply (or
    none) from both paths. (The examples share one pair of filters.)"""
    reference, fast = pair
    datagrams = []
    for chunk in chunks:
        base = bytearray(rnd.choice(_queries()))
        for i in range(min(len(chunk) // 2, 6)):
            base[chunk[2 * i] % len(base)] = chunk[2 * i + 1]
        if chunk and chunk[0] & 1:
            base = base[: max(1, chunk[-1] % len(base))]
        datagrams.append(bytes(base))
    datagrams.append(chunks[0])
    assert _exchange(fast.bound[0], datagrams, 0.3) == _exchange(reference.bound[0], datagrams, 0.3)


def test_profile_swap_takes_effect_at_the_next_batch(
    lib: fastpath.FastPath, make_filter: Callable[..., DnsFilter], mkprofile: Callable[..., Any]
) -> None:
    fast = make_filter()
    assert fast.fast_path is not None
    blocked = _exchange(fast.bound[0], [dw.build_query("casino.test", ident=1)])[0]
    assert blocked is not None and blocked[3] & 0xF == dw.NXDOMAIN
    fast.set_profile(mkprofile(block=("adult",)), 2)  # gambling no longer blocked
    forwarded = _exchange(fast.bound[0], [dw.build_query("casino.test", ident=2)])[0]
    assert forwarded is not None and forwarded[3] & 0xF == dw.NOERROR
    fast.set_profile(mkprofile(allowlist_only=True), 3)  # Python's alone: nothing listed passes
    denied = _exchange(fast.bound[0], [dw.build_query("forwarded.example", ident=3)])[0]
    assert denied is not None and denied[3] & 0xF == dw.NXDOMAIN


def test_blocked_names_reach_the_journal_with_their_reason(
    lib: fastpath.FastPath, make_filter: Callable[..., DnsFilter]
) -> None:
    from agent.store.events import EventKind, MemoryEventSink

    sink = MemoryEventSink()
    # a canary the guardian also listed: Python's reason ("bypass") wins, as in match.py
    fast = make_filter(events=sink, deny=("use-application-dns.net",))
    _exchange(fast.bound[0], [dw.build_query("WWW.Casino.test", ident=1), dw.build_query("porn.example"),
                              dw.build_query("use-application-dns.net")])
    fast.stop()  # flushes the queue
    got = {(e.data["domain"], e.data["reason"]) for e in sink.events if e.kind is EventKind.DNS_BLOCKED}
    assert got == {("www.casino.test", "gambling"), ("porn.example", "adult"),
                   ("use-application-dns.net", "bypass")}
