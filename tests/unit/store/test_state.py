"""The state store: migrations, round trips, and refusal of a newer schema."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from agent.core.activity import Closed
from agent.core.clock import Watermark
from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.policy import DefaultKey
from agent.core.usage import Interval
from agent.store.events import Event, EventKind
from agent.store.state import MIGRATIONS, StateStore, from_us, to_us

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_schema_is_migrated_once_and_reopened(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    store = StateStore(db)
    assert store.schema_version == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert StateStore(db).schema_version == len(MIGRATIONS)


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this agent knows"):
        StateStore(db)


def test_round_trips(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    mark = Watermark("boot", 5, T, timedelta(seconds=-3), "UTC")
    store.commit_tick([Closed("", Interval(T, T + timedelta(minutes=5))),
                       Closed("org.x.App", Interval(T, T + timedelta(minutes=2)), frozenset({"Game"}))], mark)
    assert store.load_watermark() == mark
    usage = store.usage_since(T - timedelta(days=1))
    assert usage.active == (Interval(T, T + timedelta(minutes=5)),)
    assert usage.app_categories["org.x.App"] == {"Game"}
    grants = [
        Grant("b", GrantKind.BONUS, T, T + timedelta(hours=3), GrantSource.DASHBOARD, minutes=15, day=date(2026, 11, 23)),
        Grant("w", GrantKind.WAIVER, T, T + timedelta(hours=1), GrantSource.GUARDIAN_CODE, waives=DefaultKey.CURFEW),
    ]
    for g in grants:
        store.add_grant(g)
    assert store.grants(T) == grants
    assert store.grants(T + timedelta(hours=2)) == grants[:1]  # the waiver expired
    store.record(Event(EventKind.LOCK, T, {"reason": "curfew"}))
    assert store.events(EventKind.LOCK)[0].data == {"reason": "curfew"}
    assert store.purge_usage_before(T + timedelta(days=1)) == 2
    assert from_us(to_us(T)) == T


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    g = Grant("same", GrantKind.UNLOCK, T, T + timedelta(hours=1), GrantSource.LOCAL_ADMIN)
    store.add_grant(g)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_grant(g)
    assert store.grants(T) == [g]
