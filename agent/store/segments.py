"""The journal's segments: who each is sealed to, the open one's key, and rotation.

A segment gets a fresh key (`agent.store.seal`) wrapped to every paired guardian, or to
the device-local key before pairing. The key of the open segment lives only in
`Segments.current` and is forgotten when the segment closes (full, old, at pairing, at
close), so the device cannot read its own past. Pairing re-wraps the segments still
sealed to the device-local key for the guardians and drops the local wraps.

`Segments` works on the journal's connection; the methods that write run inside the
journal's transaction (the caller's `with journal._transaction()`), never their own.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.store import seal
from agent.store.sqlite import from_micros, micros

DEVICE_LOCAL = "device-local"
GUARDIAN = "guardian"


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    uid: str
    opened_at: datetime
    closed_at: datetime | None
    records: int
    first_seq: int | None
    last_seq: int | None
    recipients: tuple[tuple[str, str], ...]  # (role, hex public key)


@dataclass
class OpenSegment:
    id: int
    uid: str
    opened_at: int
    aead: AESGCM  # the only holder of the segment key; dropped when the segment closes
    records: int = 0
    first_seq: int | None = None  # first and last seq appended to it by this object
    last_seq: int | None = None


@dataclass(frozen=True)
class Rewraps:
    """The keys of the segments still sealed to the device-local key, wrapped to the
    guardians instead (made before the write transaction: HPKE is slow)."""

    wraps: list[tuple[int, str, str, bytes]]  # (segment id, recipient id, role, wrapped key)
    segment_ids: list[int]


class Segments:
    def __init__(
        self,
        db: sqlite3.Connection,
        local_key: X25519PrivateKey,
        clock: Callable[[], datetime],
        *,
        max_records: int,
        max_age: timedelta,
    ) -> None:
        self._db = db
        self._local_key = local_key
        self._clock = clock
        self._max_records = max_records
        self._max_age = max_age // timedelta(microseconds=1)
        self.current: OpenSegment | None = None

    def guardians(self) -> list[X25519PublicKey]:
        rows = self._db.execute("SELECT recipient FROM recipients ORDER BY recipient").fetchall()
        return [seal.public_key_from_hex(r[0]) for r in rows]

    # -- in the journal's transaction ---------------------------------------------------

    def close_abandoned(self) -> None:
        """A segment left open by a previous run cannot be continued: its key is gone."""
        self._db.execute(
            "UPDATE segments SET closed_at = ? WHERE closed_at IS NULL", (micros(self._clock()),)
        )

    def open_new(self) -> OpenSegment:
        now = micros(self._clock())
        uid = uuid.uuid4().hex
        key = seal.new_segment_key()
        wraps: list[tuple[str, str, bytes]] = [
            (seal.recipient_id(g), GUARDIAN, seal.wrap_key(key, g, uid)) for g in self.guardians()
        ]
        if not wraps:
            local = self._local_key.public_key()
            wraps.append((seal.recipient_id(local), DEVICE_LOCAL, seal.wrap_key(key, local, uid)))
        cur = self._db.execute("INSERT INTO segments (uid, opened_at) VALUES (?, ?)", (uid, now))
        seg_id = int(cur.lastrowid or 0)
        self._db.executemany(
            "INSERT INTO segment_keys (segment_id, recipient, role, wrapped) VALUES (?,?,?,?)",
            [(seg_id, rid, role, w) for rid, role, w in wraps],
        )
        return OpenSegment(seg_id, uid, now, AESGCM(key))

    def close_current(self) -> None:
        """Close it, forget its key, and keep only its last checkpoint (so checkpoints stay
        about one per segment; a rewrite inside a closed segment is still caught, named
        from the segment's first record)."""
        seg, self.current = self.current, None
        if seg is None:
            return
        self._db.execute(
            "UPDATE segments SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
            (micros(self._clock()), seg.id),
        )
        if seg.first_seq is not None and seg.last_seq is not None:
            self._db.execute(
                "DELETE FROM checkpoints WHERE seq >= ? AND seq < ?",
                (seg.first_seq, seg.last_seq),
            )

    def writable(self, unchanged: bool) -> OpenSegment:
        """The open segment, rotated when full or old, or when another process (a data
        deletion from the CLI) closed or deleted it; `unchanged`: no other connection has
        committed since our last append, so the segment row needs no re-reading."""
        seg = self.current
        if seg is not None:
            row = (
                (None,)
                if unchanged
                else self._db.execute(
                    "SELECT closed_at FROM segments WHERE id = ?", (seg.id,)
                ).fetchone()
            )
            if (
                row is None
                or row[0] is not None
                or seg.records >= self._max_records
                or micros(self._clock()) - seg.opened_at >= self._max_age
            ):
                self.close_current()
                seg = None
        if seg is None:
            seg = self.current = self.open_new()
        return seg

    def add_guardians(self, keys: Iterable[X25519PublicKey]) -> None:
        now = micros(self._clock())
        self._db.executemany(
            "INSERT OR IGNORE INTO recipients (recipient, added_at) VALUES (?, ?)",
            [(seal.recipient_id(k), now) for k in keys],
        )

    def forget_guardians(self) -> None:
        self._db.execute("DELETE FROM recipients")

    def rewrap(self, rewraps: Rewraps) -> None:
        """Store the guardian wraps `local_wraps_for` made and drop the local ones."""
        self._db.executemany(
            "INSERT OR REPLACE INTO segment_keys (segment_id, recipient, role, wrapped) "
            "VALUES (?,?,?,?)",
            rewraps.wraps,
        )
        self._db.executemany(
            "DELETE FROM segment_keys WHERE segment_id = ? AND role = ?",
            [(seg_id, DEVICE_LOCAL) for seg_id in rewraps.segment_ids],
        )

    # -- reading ------------------------------------------------------------------------

    def local_wraps_for(self, guardians: list[X25519PublicKey]) -> Rewraps:
        """Every segment still sealed to the device-local key, its key wrapped to each of
        `guardians` instead (for `rewrap`)."""
        local_id = seal.recipient_id(self._local_key.public_key())
        rows = self._db.execute(
            "SELECT s.id, s.uid, k.wrapped FROM segment_keys k JOIN segments s "
            "ON s.id = k.segment_id WHERE k.role = ? AND k.recipient = ?",
            (DEVICE_LOCAL, local_id),
        ).fetchall()
        inserts: list[tuple[int, str, str, bytes]] = []
        for seg_id, uid, wrapped in rows:
            key = seal.unwrap_key(bytes(wrapped), self._local_key, uid)
            inserts.extend(
                (seg_id, seal.recipient_id(g), GUARDIAN, seal.wrap_key(key, g, uid))
                for g in guardians
            )
        return Rewraps(inserts, [r[0] for r in rows])

    def infos(self) -> list[SegmentInfo]:
        counts = {
            seg_id: (n, first, last)
            for seg_id, n, first, last in self._db.execute(
                "SELECT segment_id, count(*), min(seq), max(seq) FROM records GROUP BY segment_id"
            )
        }
        segs = [
            (*row, *counts.get(row[0], (0, None, None)))
            for row in self._db.execute(
                "SELECT id, uid, opened_at, closed_at FROM segments ORDER BY id"
            )
        ]
        keys: dict[int, list[tuple[str, str]]] = {}
        for seg_id, role, rid in self._db.execute(
            "SELECT segment_id, role, recipient FROM segment_keys ORDER BY role, recipient"
        ):
            keys.setdefault(seg_id, []).append((role, rid))
        return [
            SegmentInfo(
                id=s[0],
                uid=s[1],
                opened_at=from_micros(s[2]),
                closed_at=None if s[3] is None else from_micros(s[3]),
                records=s[4],
                first_seq=s[5],
                last_seq=s[6],
                recipients=tuple(keys.get(s[0], ())),
            )
            for s in segs
        ]

    def opened_for(self, private_key: X25519PrivateKey) -> dict[int, tuple[str, AESGCM]]:
        """Segment id -> (uid, its record cipher) for every segment wrapped to this key.

        Raises SealError if a wrap meant for this key does not open."""
        rid = seal.recipient_id(private_key.public_key())
        segs = self._db.execute(
            "SELECT s.id, s.uid, k.wrapped FROM segments s JOIN segment_keys k "
            "ON k.segment_id = s.id WHERE k.recipient = ? ORDER BY s.id",
            (rid,),
        ).fetchall()
        return {
            seg_id: (uid, AESGCM(seal.unwrap_key(bytes(wrapped), private_key, uid)))
            for seg_id, uid, wrapped in segs
        }
