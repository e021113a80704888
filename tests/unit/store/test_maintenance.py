"""The daemon's journal housekeeping: deferred events get flushed, retention runs."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.core.parse import default_policy
from agent.core.policy import AgeBand, SpendingCaps
from agent.store.events import Event, EventKind
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.maintenance import StoreMaintenance


async def test_flushes_deferred_events_and_applies_retention(tmp_path: Path) -> None:
    now = [datetime(2026, 3, 1, 12, tzinfo=UTC)]
    guardian = X25519PrivateKey.generate()
    journal = Journal(tmp_path / "j.db", Ed25519PrivateKey.generate(),
                      X25519PrivateKey.generate(), clock=lambda: now[0])
    journal.pair([guardian.public_key()])
    journal.record(Event(EventKind.LOCK, now[0], {}))
    journal.close_segment()
    ledger = Ledger(tmp_path / "l.db")
    caps = SpendingCaps("CNY", 100, 100, 100, 100)
    ledger.authorize(caps=caps, tz=UTC, app_id="a", amount=1, currency="CNY", item="x",
                     idempotency_key="old", now=now[0])
    now[0] += timedelta(days=40)
    policy = dataclasses.replace(default_policy(AgeBand.AGE_12_16), retention_days=30)
    m = StoreMaintenance(journal, ledger, lambda: policy, lambda: now[0], flush_every=0.02)
    task = asyncio.create_task(m.run())
    journal.defer(Event(EventKind.WARNING, now[0], {"minutes": 5}))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if journal.pending == 0:
            break
    m.stop()
    await asyncio.wait_for(task, 5)
    kinds = [e.event.kind for e in journal.read(guardian)]
    assert kinds == [EventKind.RETENTION_PURGE, EventKind.WARNING]  # the old LOCK is gone
    assert ledger.count() == 0
    assert journal.verify().ok
    journal.close()
