"""The journal's SQLite file: its schema, how it is opened, and its rows as plain values.

WAL with synchronous=FULL (a commit is on disk when it returns), foreign keys on (a
segment's wraps go with it), secure_delete on (deleted wraps and records are zeroed).
Readers take one `snapshot`, so the records and checkpoints they see come from the same
commit while the daemon appends from another connection.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.store import retention
from agent.store.chain import Anchor, ChainRecord, Checkpoint
from agent.store.recovery import check_sqlite
from agent.store.sqlite import from_micros

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    recipient TEXT PRIMARY KEY,            -- guardian X25519 public key, hex
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    opened_at INTEGER NOT NULL,            -- UTC microseconds
    closed_at INTEGER                      -- NULL while open
);
CREATE TABLE IF NOT EXISTS segment_keys (
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,               -- hex public key
    role TEXT NOT NULL,                    -- 'guardian' | 'device-local'
    wrapped BLOB NOT NULL,                 -- HPKE enc || ct
    PRIMARY KEY (segment_id, recipient)
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,               -- the chain head's seq (= records ever appended)
    head BLOB NOT NULL,
    at INTEGER NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deletions (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    segments INTEGER NOT NULL,
    records INTEGER NOT NULL,
    up_to_seq INTEGER NOT NULL,
    signature BLOB NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0      -- confirmed to the guardian (by sync, later)
);
"""


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    if writer:
        check_sqlite(path)  # a damaged journal is set aside (agent.store.recovery), not fatal
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    if writer:
        os.chmod(path, 0o600)  # SQLite gives the -wal and -shm files the same mode
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA secure_delete=ON")
    db.executescript(SCHEMA)
    return db


@contextmanager
def snapshot(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction (the caller holds the journal's lock: no write is open)."""
    db.execute("BEGIN")
    try:
        yield db
    finally:
        db.execute("COMMIT")


def head(db: sqlite3.Connection) -> tuple[int, bytes]:
    """The last record's (seq, hash), or the anchor's when no record is left."""
    row = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), bytes(row[1])
    anchor = retention.load_anchor(db)
    return anchor.seq, anchor.hash


def chain_records(db: sqlite3.Connection, after: int = 0) -> Iterator[ChainRecord]:
    """Every record (after seq `after`) in seq order, with its segment's uid (None if the
    segment is gone)."""
    uids = dict(db.execute("SELECT id, uid FROM segments").fetchall())
    for seq, seg_id, n, c, p, h in db.execute(
        "SELECT seq, segment_id, nonce, ciphertext, prev_hash, hash FROM records WHERE seq > ? ORDER BY seq",
        (after,),
    ):
        yield ChainRecord(seq, uids.get(seg_id), bytes(n), bytes(c), bytes(p), bytes(h), seg_id)


def checkpoints(db: sqlite3.Connection) -> Iterator[Checkpoint]:
    for seq, head_hash, at, sig in db.execute(
        "SELECT seq, head, at, signature FROM checkpoints ORDER BY seq"
    ):
        yield Checkpoint(seq, bytes(head_hash), at, bytes(sig))


def export_rows(db: sqlite3.Connection) -> dict[str, Any]:
    """Everything held, still sealed, as plain data (the body of `datarights.export`)."""
    anchor = retention.load_anchor(db)
    by_segment: dict[int | None, list[dict[str, Any]]] = {}
    for rec in chain_records(db):
        by_segment.setdefault(rec.segment_id, []).append(
            {
                "seq": rec.seq,
                "nonce": rec.nonce.hex(),
                "ciphertext": rec.ciphertext.hex(),
                "prev_hash": rec.prev_hash.hex(),
                "hash": rec.hash.hex(),
            }
        )
    keys: dict[int, list[dict[str, str]]] = {}
    for seg_id, rid, role, w in db.execute(
        "SELECT segment_id, recipient, role, wrapped FROM segment_keys ORDER BY segment_id, recipient"
    ):
        keys.setdefault(seg_id, []).append({"recipient": rid, "role": role, "wrapped": bytes(w).hex()})
    return {
        "anchor": {"seq": anchor.seq, "hash": anchor.hash.hex(), "signature": anchor.signature.hex()},
        "segments": [
            {
                "uid": uid,
                "opened_at": from_micros(opened).isoformat(),
                "closed_at": None if closed is None else from_micros(closed).isoformat(),
                "keys": keys.get(seg_id, []),
                "records": by_segment.get(seg_id, []),
            }
            for seg_id, uid, opened, closed in db.execute(
                "SELECT id, uid, opened_at, closed_at FROM segments ORDER BY id"
            ).fetchall()
        ],
        "checkpoints": [
            {"seq": cp.seq, "head": cp.head.hex(), "at": cp.at, "signature": cp.signature.hex()}
            for cp in checkpoints(db)
        ],
    }


@dataclass(frozen=True)
class WireRange:
    """Records after a seq as they travel to the dashboard (PROTOCOL.md §11): sealed, with
    their segments' guardian key wraps (never a device-local wrap) and the signed
    checkpoints in the range. Records of a segment not sealed to any guardian (written
    while unpaired) stop the range: nothing readable only by the device leaves it."""

    head: int  # the journal's last seq
    base_seq: int  # where the surviving chain starts (a purge anchor), 0 if none
    anchor: Anchor | None  # the signed anchor, when the range starts right after it
    records: list[tuple[int, str, bytes, bytes]]  # (seq, segment uid, nonce, ciphertext)
    segments: dict[str, list[tuple[str, bytes]]]  # uid -> [(recipient hex, wrapped)]
    checkpoints: list[Checkpoint]


def wire_range(db: sqlite3.Connection, after: int, limit: int, max_segments: int) -> WireRange:
    """Up to `limit` records after seq `after` from at most `max_segments` segments (a range
    ends before the first record of one segment too many: the rest is the next upload's)."""
    last, _ = head(db)
    anchor = retention.load_anchor(db)
    start = max(after, anchor.seq)
    uids = dict(db.execute("SELECT id, uid FROM segments").fetchall())
    wraps: dict[int, list[tuple[str, bytes]]] = {}
    for seg_id, rid, w in db.execute(
            "SELECT segment_id, recipient, wrapped FROM segment_keys WHERE role = 'guardian' "
            "ORDER BY segment_id, recipient"):
        wraps.setdefault(seg_id, []).append((rid, bytes(w)))
    records: list[tuple[int, str, bytes, bytes]] = []
    segments: dict[str, list[tuple[str, bytes]]] = {}
    for seq, seg_id, nonce, ct in db.execute(
            "SELECT seq, segment_id, nonce, ciphertext FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (start, limit)):
        if seg_id not in wraps or seg_id not in uids:
            break
        if uids[seg_id] not in segments and len(segments) >= max_segments:
            break
        records.append((int(seq), uids[seg_id], bytes(nonce), bytes(ct)))
        segments.setdefault(uids[seg_id], wraps[seg_id])
    hi = records[-1][0] if records else start
    cps = [Checkpoint(q, bytes(h), at, bytes(sig)) for q, h, at, sig in db.execute(
        "SELECT seq, head, at, signature FROM checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq",
        (start, hi))]
    follows_anchor = anchor.seq > 0 and records and records[0][0] == anchor.seq + 1
    return WireRange(last, anchor.seq, anchor if follows_anchor else None, records, segments, cps)
