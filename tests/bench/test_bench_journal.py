"""Sealed journal appends vs plain SQLite inserts of the same rows, in the same run.

Both sides use WAL and synchronous=FULL and commit the same way (one transaction per
batch, or one per row), so the ratio shows what sealing, chaining and signing cost.
Prints figures; asserts no times. Run:
    .venv/bin/pytest -m bench -s tests/bench/test_bench_journal.py
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.store.events import Event, EventKind
from agent.store.journal import Journal, encode_event

BATCH = 100
BATCHES = 10
SINGLES = 50
ROUNDS = 9


def _events(n: int) -> list[Event]:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        Event(EventKind.DNS_BLOCKED, at, {"domain": f"ads{i}.tracker.example", "category": "ads"})
        for i in range(n)
    ]


def _plain(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    return db


def _plain_rate(db: sqlite3.Connection, events: list[Event], batch: int) -> float:
    """The same events, JSON-encoded the same way, inserted in clear."""
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO events (body) VALUES (?)",
            [(encode_event(e),) for e in events[i:i + batch]],
        )
        db.execute("COMMIT")
    return len(events) / (time.perf_counter() - start)


def _sealed_rate(journal: Journal, events: list[Event], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        journal.append(events[i:i + batch])
    return len(events) / (time.perf_counter() - start)


@pytest.mark.bench
def test_bench_sealed_appends_vs_plain_sqlite(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db", Ed25519PrivateKey.generate(),
                      X25519PrivateKey.generate(), clock=lambda: datetime.now(UTC))
    journal.pair([X25519PrivateKey.generate().public_key()])
    plain = _plain(tmp_path / "plain.db")
    batched = _events(BATCH * BATCHES)
    singles = _events(SINGLES)
    rates: dict[str, list[float]] = {k: [] for k in ("plain_b", "sealed_b", "plain_s", "sealed_s")}
    for _ in range(ROUNDS):  # interleaved, so disk noise hits both sides alike
        rates["plain_b"].append(_plain_rate(plain, batched, BATCH))
        rates["sealed_b"].append(_sealed_rate(journal, batched, BATCH))
        rates["plain_s"].append(_plain_rate(plain, singles, 1))
        rates["sealed_s"].append(_sealed_rate(journal, singles, 1))
    assert journal.verify().ok
    m = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"\njournal bench (WAL, synchronous=FULL; medians of {ROUNDS} interleaved rounds)\n"
        f"  batched ({BATCH}/txn, {len(batched)} rows/round): sealed {m['sealed_b']:,.0f}/s, "
        f"plain {m['plain_b']:,.0f}/s, ratio {m['sealed_b'] / m['plain_b']:.2f}x "
        f"(goal >= 0.5x)\n"
        f"  single (1/txn, {SINGLES} rows/round): sealed {m['sealed_s']:,.0f}/s, "
        f"plain {m['plain_s']:,.0f}/s, ratio {m['sealed_s'] / m['plain_s']:.2f}x"
    )
    journal.close()
    plain.close()
