"""The filter's threads sleep until a real deadline: none while idle, the first query's
timeout while one is in flight, a held count's minute in the batcher. (The wake-ups of the
whole running agent are measured in tests/bench/test_bench_idle.py.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.filter import dnswire as dw
from agent.filter.eventbatch import BlockedTally, EventBatcher
from agent.filter.server import DnsFilter, FilterSettings
from agent.store.events import MemoryEventSink

CLOCK = datetime(2026, 1, 1, tzinfo=UTC)


def until(what: str, check: Callable[[], bool], bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def silent_upstream() -> Iterator[tuple[str, int]]:
    """A resolver that never answers: every forwarded query waits for its timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()
    s.close()


def test_the_loop_waits_for_the_first_timeout_and_otherwise_for_ever(
    lists_dir: Path, mkprofile: Callable[..., Any], silent_upstream: tuple[str, int]
) -> None:
    timeout = 0.5
    flt = DnsFilter(FilterSettings(listen=(("127.0.0.1", 0),), upstreams=(silent_upstream,),
                                   lists_dir=lists_dir, timeout=timeout),
                    mkprofile(), 1, clock=lambda: CLOCK)
    flt.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(10)
    try:
        assert flt._wait(0.0) == -1, "idle: no timeout at all"
        client.sendto(dw.build_query("allowed.test"), flt.bound[0])
        until("the query is in flight", lambda: bool(flt._upstreams.pending))
        assert 0.0 <= flt._wait(0.0) <= timeout
        reply, _ = client.recvfrom(4096)  # SERVFAIL once the only resolver timed out
        assert reply[3] & 0x0F == dw.SERVFAIL and flt.stats.timeouts == 1
        assert flt._wait(0.0) == -1, "nothing in flight again: no timeout"
    finally:
        client.close()
        flt.stop()


def test_the_batcher_sleeps_until_a_held_count_is_due() -> None:
    now = [100.0]
    batcher = EventBatcher(MemoryEventSink(), lambda: CLOCK, rate_limit=60.0,
                           monotonic=lambda: now[0])
    assert batcher._idle_wait() is None, "nothing handed: no wake-up"
    for _ in range(2):  # the first lookup is written; the second is held for the minute
        tally = BlockedTally(8)
        tally.add(b"\x05porno\x04test\x00", "adult")
        batcher.hand(tally)
        batcher.flush()
    now[0] = 130.0
    assert batcher._idle_wait() == pytest.approx(30.0)
    now[0] = 160.0
    batcher.flush()  # the held count is written; its name's minute starts again, empty
    assert batcher._idle_wait() is None
