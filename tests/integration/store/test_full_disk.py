"""The child fills the disk the agent's state lives on (a small tmpfs the test mounts):
enforcement keeps going from memory with the session locked (the limited mode: nothing
counts) and a storage_failure tamper event queued; the usage the store could not take is
kept; when space returns, the usage and the events reach the disk and the lock lifts.
Nothing raises out of a tick."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import pytest
from support.scenario import iso, policy
from support.tmpfs import mounted_tmpfs

from agent.core.decision import LockReason
from agent.dev.clock import ManualClock
from agent.runtime.agent import Agent
from agent.runtime.clock import TrustedClock
from agent.store.events import EventKind
from agent.store.layout import StoreLayout
from agent.store.queueing import QueueingSink
from agent.store.recovery import StorageHealth
from agent.store.seal import load_private_key
from agent.store.state import StateStore

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs"),
]


def fill(path: Path) -> None:
    """Write until the file system says it is full (what a child's downloads do)."""
    chunk = b"\xaa" * 65536
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\xaa" * 512)


def test_a_full_disk_locks_the_session_and_enforcement_goes_on_from_memory() -> None:
    with mounted_tmpfs("size=3m,mode=700", prefix="mm-full-", mode=0o700) as state:
        layout = StoreLayout(state)
        clock_source = ManualClock(iso("2026-11-23T16:00"), zone="Asia/Shanghai")
        store = StateStore(state / "state.sqlite")
        clock = TrustedClock(clock_source, store.load_watermark())
        journal = layout.open_journal(clock=clock.latest)
        health = StorageHealth()
        queue = QueueingSink(journal, health, clock.latest)
        clock.record_events_to(queue)
        agent = Agent(store, clock, None, events=queue, storage=health)
        agent.policy = policy(waive=["windows", "curfew", "school", "rest", "games"],
                              budget={"every_day": 120})
        agent.set_counting(True)
        agent.tick()
        assert agent.decision is not None and not agent.decision.locked

        filler = state / "child-downloads.bin"
        fill(filler)
        for _ in range(600):  # each tick commits usage; the WAL soon needs a page it cannot get
            clock_source.advance(10)
            decision = agent.tick()
            if decision.locked:
                break
        assert decision.locked and decision.reason is LockReason.STORAGE_FAILURE
        assert decision.apps.device_locked  # only always-allowed apps run meanwhile
        assert "state" in health.failing
        used_at_lock = decision.used_seconds  # some of it only in memory
        assert used_at_lock > 0
        for _ in range(30):  # locked: the limited mode, where nothing counts
            clock_source.advance(10)
            decision = agent.tick()
        assert decision.used_seconds == used_at_lock and decision.locked
        assert journal.pending > 0  # events wait in memory, the outage among them

        filler.unlink()  # space returns
        clock_source.advance(10)
        agent.tick()  # the usage kept in memory is committed
        queue.flush()  # StoreMaintenance's next flush: the queued events
        decision = agent.tick()
        assert health.ok and not decision.locked
        assert journal.pending == 0
        kinds = [e.event.kind for e in journal.read(load_private_key(layout.local_seal_key))]
        assert EventKind.STORAGE_FAILURE in kinds
        journal.close()
        store.close()
        # Every counted second reached the disk: a fresh store sees the same use.
        again = StateStore(state / "state.sqlite")
        total = sum((iv.end - iv.start).total_seconds() for iv in again.usage_since(iso("2026-11-23T00:00")).active)
        assert total == decision.used_seconds == used_at_lock
        again.close()
