"""Fixtures for the journal and ledger tests: keys, a settable clock, a fresh journal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.store.journal import Journal


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Keys:
    device: Ed25519PrivateKey
    local: X25519PrivateKey
    guardian: X25519PrivateKey


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def keys() -> Keys:
    return Keys(
        Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), X25519PrivateKey.generate()
    )


@pytest.fixture
def journal(tmp_path: Path, keys: Keys, clock: FakeClock) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db", keys.device, keys.local, clock=clock)
    yield j
    j.close()
