"""Deleting from the journal without breaking its tamper evidence.

Only a prefix of the chain is ever deleted (closed segments, oldest first: retention; or
everything: a guardian's request, unpairing). The last deleted record's (seq, hash) then
becomes the signed anchor where the surviving chain starts (`chain.anchor_message`), so
`verify` still holds, and a deletion of everything leaves a signed receipt in `deletions`
for sync to confirm to the guardian.

The functions work on the journal's connection inside its transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.store.chain import NO_ANCHOR, Anchor, anchor_message, deletion_message
from agent.store.sqlite import from_micros


@dataclass(frozen=True)
class PurgeResult:
    segments: int
    records: int
    up_to_seq: int


@dataclass(frozen=True)
class DeletionReceipt:
    id: int
    at: datetime
    reason: str
    segments: int
    records: int
    up_to_seq: int
    signature: bytes


def _meta(db: sqlite3.Connection, key: str) -> bytes | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def load_anchor(db: sqlite3.Connection) -> Anchor:
    """Where the surviving chain starts (seq 0 and GENESIS before any purge)."""
    seq = _meta(db, "base_seq")
    if seq is None:
        return NO_ANCHOR
    return Anchor(int(seq), _meta(db, "base_hash") or NO_ANCHOR.hash, _meta(db, "anchor_sig") or b"")


def closed_before(db: sqlite3.Connection, limit: int) -> list[int]:
    """Ids of the oldest segments that closed before `limit` (UTC µs): a prefix, stopping
    at the first that is open or closed later."""
    ids: list[int] = []
    for seg_id, closed in db.execute("SELECT id, closed_at FROM segments ORDER BY id").fetchall():
        if closed is None or closed >= limit:
            break
        ids.append(seg_id)
    return ids


def drop_prefix(
    db: sqlite3.Connection, segment_ids: list[int], device_key: Ed25519PrivateKey
) -> tuple[int, int]:
    """Delete these segments (a prefix of the chain) and move the signed anchor past
    them; returns (records deleted, seq the chain now starts after)."""
    if not segment_ids:
        return 0, load_anchor(db).seq
    marks = ",".join("?" * len(segment_ids))
    count, last = db.execute(
        f"SELECT count(*), max(seq) FROM records WHERE segment_id IN ({marks})", segment_ids
    ).fetchone()
    if last is not None:
        head = bytes(db.execute("SELECT hash FROM records WHERE seq = ?", (last,)).fetchone()[0])
        db.execute("DELETE FROM records WHERE seq <= ?", (last,))
        db.execute("DELETE FROM checkpoints WHERE seq < ?", (last,))
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [
                ("base_seq", str(last).encode()),
                ("base_hash", head),
                ("anchor_sig", device_key.sign(anchor_message(last, head))),
            ],
        )
    db.execute(f"DELETE FROM segments WHERE id IN ({marks})", segment_ids)
    return int(count), load_anchor(db).seq if last is None else int(last)


def delete_everything(
    db: sqlite3.Connection, device_key: Ed25519PrivateKey, at: int, reason: str
) -> DeletionReceipt:
    """Every segment, record and checkpoint; a signed receipt stays (synced = 0)."""
    ids = [r[0] for r in db.execute("SELECT id FROM segments ORDER BY id")]
    records, up_to = drop_prefix(db, ids, device_key)
    db.execute("DELETE FROM checkpoints")
    sig = device_key.sign(deletion_message(at, reason, len(ids), records, up_to))
    cur = db.execute(
        "INSERT INTO deletions (at, reason, segments, records, up_to_seq, signature) "
        "VALUES (?,?,?,?,?,?)",
        (at, reason, len(ids), records, up_to, sig),
    )
    return DeletionReceipt(
        int(cur.lastrowid or 0), from_micros(at), reason, len(ids), records, up_to, sig
    )


def receipts(db: sqlite3.Connection, unsynced_only: bool = False) -> list[DeletionReceipt]:
    query = "SELECT id, at, reason, segments, records, up_to_seq, signature FROM deletions"
    if unsynced_only:
        query += " WHERE synced = 0"
    return [
        DeletionReceipt(r[0], from_micros(r[1]), r[2], r[3], r[4], r[5], bytes(r[6]))
        for r in db.execute(query + " ORDER BY id")
    ]
