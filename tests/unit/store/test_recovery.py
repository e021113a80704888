"""Damaged files are set aside (never fatal, never mistaken for a full disk), at most a few
copies kept; the last good policy outlives a damaged state store through its copy."""

from __future__ import annotations

import errno
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agent.core.parse import default_policy, policy_to_mapping
from agent.core.policy import AgeBand
from agent.store.recovery import KEEP_DAMAGED, is_damage, is_storage_failure, set_aside_log, sqlite_damage
from agent.store.state import StateStore

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_a_garbled_store_is_set_aside_and_a_fresh_one_made(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    assert sqlite_damage(path) is not None
    store = StateStore(path)
    assert store.schema_version > 0 and store.interval_count() == 0
    store.close()
    assert (tmp_path / "state.sqlite.damaged-1").read_bytes().startswith(b"not a database")
    assert set_aside_log()[-1].moved_to.name == "state.sqlite.damaged-1"


def test_a_healthy_or_missing_store_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    assert sqlite_damage(path) is None
    StateStore(path).close()
    assert sqlite_damage(path) is None
    assert not list(tmp_path.glob("*.damaged-*"))


def test_only_a_few_damaged_copies_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    for _ in range(KEEP_DAMAGED + 3):
        path.write_bytes(b"garbage" * 1000)
        StateStore(path).close()
    kept = sorted(p.name for p in tmp_path.glob("ledger.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm")))
    assert len(kept) == KEEP_DAMAGED


def test_a_full_disk_is_a_storage_failure_not_damage() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = 11  # type: ignore[attr-defined]
    assert is_storage_failure(full) and not is_damage(full)
    assert is_damage(corrupt) and not is_storage_failure(corrupt)
    assert is_storage_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_storage_failure(OSError(errno.ENOENT, "missing"))


def test_the_last_good_policy_survives_a_damaged_store_through_its_copy(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    policy = default_policy(AgeBand.AGE_12_16)
    store.save_policy(7, "signed by mum", policy_to_mapping(policy), T)
    store.close()
    path.write_bytes(b"\x00" * 4096)  # the store is lost
    store = StateStore(path)
    saved = store.last_policy()
    assert saved is not None and saved[0] == 7 and "signed by mum" in saved[1]
    assert saved[2] == policy_to_mapping(policy)
    store.policy_copy.write_text("{torn")
    assert store.last_policy() is None  # an unreadable copy: set aside, band defaults follow
    assert store.policy_copy.with_name(store.policy_copy.name + ".damaged-1").exists()
    store.close()
