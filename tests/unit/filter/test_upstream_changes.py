"""The running filter follows the network's resolvers (`DnsFilter.set_upstreams`): none
known yet (forwarded names get SERVFAIL at once, blocked ones NXDOMAIN as ever), then one,
then another, on loopback with fake upstreams, without restarting the filter."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.filter import dnswire as dw
from agent.filter.fakeupstream import FakeUpstream
from agent.filter.server import DnsFilter, FilterSettings

pytestmark = pytest.mark.timeout(60)


def first_a(addr: tuple[str, int], name: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(dw.build_query(name, ident=0x3131), addr)
        reply = s.recv(4096)
    if reply[3] & 0xF:
        return f"rcode{reply[3] & 0xF}"
    return socket.inet_ntoa(reply[-4:])


def until(check: Callable[[], str], want: str) -> str:
    """Ask again until the answer is `want` (the loop swaps on its next wake-up), bounded."""
    deadline = time.monotonic() + 10
    got = check()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = check()
    return got


@pytest.fixture
def two_upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    a = FakeUpstream(overrides={"allowed.test": "10.0.0.1"}).start()
    b = FakeUpstream(overrides={"allowed.test": "10.0.0.2"}).start()
    yield a, b
    a.stop()
    b.stop()


def test_resolvers_follow_the_network(lists_dir: Path, mkprofile: Callable[..., Any],
                                      two_upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    a, b = two_upstreams
    flt = DnsFilter(FilterSettings(listen=(("127.0.0.1", 0),), upstreams=(), lists_dir=lists_dir),
                    mkprofile(), 1, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    flt.start()
    try:
        here = flt.bound[0]
        assert first_a(here, "allowed.test") == "rcode2"  # no resolver yet: SERVFAIL, no wait
        assert first_a(here, "porn.example") == "rcode3"
        flt.set_upstreams((a.addr,))
        assert until(lambda: first_a(here, "allowed.test"), "10.0.0.1") == "10.0.0.1"
        flt.set_upstreams((b.addr,))
        assert flt.upstreams == (b.addr,)
        assert until(lambda: first_a(here, "allowed.test"), "10.0.0.2") == "10.0.0.2"
        asked_a = a.count
        for _ in range(3):
            assert first_a(here, "allowed.test") == "10.0.0.2"
        assert a.count == asked_a, "the old resolver is still asked"
        assert first_a(here, "porn.example") == "rcode3"
        flt.set_upstreams(())
        assert until(lambda: first_a(here, "allowed.test"), "rcode2") == "rcode2"
    finally:
        flt.stop()
