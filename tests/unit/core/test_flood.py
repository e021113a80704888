"""Flood gates: a burst passes, then the rate; refusals are counted, keys are bounded."""

from __future__ import annotations

import pytest

from agent.core.flood import OVERFLOW, FloodGate


def test_a_burst_passes_then_the_rate_and_refusals_are_counted() -> None:
    gate = FloodGate(burst=3, per_hour=60)  # one a minute after the burst
    assert [gate.admit("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert gate.admit("a", 59.0) is False
    assert gate.admit("a", 61.0) is True
    assert gate.drain() == {"a": 3}
    assert gate.drain() == {}  # handed out once


def test_keys_are_paced_apart_and_the_total_bounds_them_together() -> None:
    gate = FloodGate(burst=2, per_hour=1, total_burst=5, total_per_hour=1)
    admitted = [gate.admit(f"site{i}", 0.0) for i in range(10)]
    assert admitted == [True] * 5 + [False] * 5  # five new keys, then the total is spent
    assert sum(gate.drain().values()) == 5


def test_random_keys_cannot_grow_the_table() -> None:
    gate = FloodGate(burst=1, per_hour=1, total_burst=10**6, total_per_hour=10**6, max_keys=4)
    for i in range(1000):
        gate.admit(f"r{i}.example", 0.0)
    refused = gate.drain()
    assert len(gate._buckets) <= 4 + 1
    assert set(refused) <= {OVERFLOW} and sum(refused.values()) == 1000 - 4 - 1


def test_full_buckets_make_room_for_new_keys() -> None:
    gate = FloodGate(burst=1, per_hour=3600, max_keys=2)
    assert gate.admit("a", 0.0) and gate.admit("b", 0.0)
    assert gate.admit("c", 10.0)  # a and b have refilled: forgotten, c gets its own bucket
    assert "c" in gate._buckets


@pytest.mark.parametrize("args", [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_limits_are_refused(args: tuple[int, float]) -> None:
    with pytest.raises(ValueError, match="flood gate"):
        FloodGate(*args)
