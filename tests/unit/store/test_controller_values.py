"""The D-Bus controller's durable values through typed StateStore methods, in the same kv
rows (and JSON) the string-keyed version wrote: a device updated in place keeps its
guardian-code back-off and its pending requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agent.core.grants import TimeRequest
from agent.core.guardian_code import CodeState
from agent.store.state import StateStore

WAIT = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)


def raw(store: StateStore, key: str) -> object:
    row = store.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def test_rows_written_before_the_typed_methods_still_read(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    with store.transaction() as conn:  # exactly what the earlier put_value stored
        conn.execute("INSERT INTO kv VALUES (?, ?)", ("guardian_code_state", json.dumps(
            {"failures": 6, "last_used": 59_000_123, "wait_until": WAIT.isoformat()}, sort_keys=True)))
        conn.execute("INSERT INTO kv VALUES (?, ?)", ("pending_time_requests", json.dumps(
            [{"id": "r1", "minutes": 15, "note": "homework"}], sort_keys=True)))
    assert store.guardian_code_state() == CodeState(59_000_123, 6, WAIT)
    assert store.pending_requests() == [TimeRequest("r1", 15, "homework")]


def test_the_typed_methods_write_the_same_rows(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    assert store.guardian_code_state() == CodeState() and store.pending_requests() == []
    store.save_guardian_code_state(CodeState(7, 1, None))
    store.save_pending_requests([TimeRequest("a", 10, ""), TimeRequest("b", 20, "再玩一会")])
    assert raw(store, "guardian_code_state") == {"last_used": 7, "failures": 1, "wait_until": None}
    assert raw(store, "pending_time_requests") == [{"id": "a", "minutes": 10, "note": ""},
                                                  {"id": "b", "minutes": 20, "note": "再玩一会"}]
    store.close()
    again = StateStore(tmp_path / "state.sqlite")
    assert again.guardian_code_state() == CodeState(7, 1, None)
    assert [r.id for r in again.pending_requests()] == ["a", "b"]


def test_a_garbled_row_reads_as_the_fresh_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    with store.transaction() as conn:
        conn.execute("INSERT INTO kv VALUES ('guardian_code_state', '[1, 2]')")
        conn.execute("INSERT INTO kv VALUES ('pending_time_requests', '{\"id\": 1}')")
    assert store.guardian_code_state() == CodeState()
    assert store.pending_requests() == []
