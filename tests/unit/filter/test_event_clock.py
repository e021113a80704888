"""DNS_BLOCKED events carry the time of the clock the filter is given (the daemon's trusted
time), never the wall clock: on the native path, the Python path and over TCP."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from agent.filter import dnswire as dw
from agent.filter.server import DnsFilter
from agent.store.events import EventKind, MemoryEventSink

pytestmark = pytest.mark.timeout(60)

TRUSTED = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)  # years from any wall clock running this


def _udp(addr: tuple[str, int], name: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(dw.build_query(name), addr)
        return s.recv(4096)


def _tcp(addr: tuple[str, int], name: str) -> bytes:
    msg = dw.build_query(name)
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(len(msg).to_bytes(2, "big") + msg)
        return s.recv(struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0], socket.MSG_WAITALL)


def _blocked_events(flt: DnsFilter, sink: MemoryEventSink, count: int) -> list[datetime]:
    deadline = time.monotonic() + 5
    while flt.stats.events < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [e.at for e in sink.events if e.kind is EventKind.DNS_BLOCKED]


def test_udp_and_tcp_blocks_carry_the_injected_clock(make_filter: Callable[..., DnsFilter]) -> None:
    sink = MemoryEventSink()
    flt = make_filter(events=sink, clock=lambda: TRUSTED)  # the native path answers UDP if built
    if os.environ.get("MINORMODE_REQUIRE_FASTPATH") == "1":
        assert flt.fast_path is not None
    assert _udp(flt.bound[0], "casino.test")[3] & 0xF == dw.NXDOMAIN
    assert _tcp(flt.bound[0], "porn.example")[3] & 0xF == dw.NXDOMAIN
    assert _blocked_events(flt, sink, 2) == [TRUSTED, TRUSTED]


def test_python_path_blocks_carry_the_injected_clock(make_filter: Callable[..., DnsFilter]) -> None:
    sink = MemoryEventSink()
    flt = make_filter(events=sink, clock=lambda: TRUSTED, block_addresses=(bytes(4), bytes(16)))
    assert flt.fast_path is None
    assert dw.parse_response(_udp(flt.bound[0], "casino.test"))[3][0].rdata == bytes(4)
    assert _blocked_events(flt, sink, 1) == [TRUSTED]
