"""The journal: every event about the child, sealed for the guardian and hash-chained.

Append-only SQLite (WAL, synchronous=FULL): once `record`/`append` returns, the event is
on disk and survives kill -9 or a power cut. Records are grouped in segments; each
segment has a fresh key (see `agent.store.seal`) that lives only in this object's memory
and is forgotten when the segment closes, so the device cannot read its own past.

Tamper evidence: each record stores the hash of the one before (the chain runs across
segments); each commit adds a checkpoint (head seq, head hash) signed with the device's
Ed25519 key, so editing, deleting, reordering or cutting off records is found by
`verify`. When old records are purged (retention, a guardian's request) a signed anchor
records where the surviving chain starts. A thief with root and the device key could
rewrite everything; checkpoints synced to the guardian are what catch that.

Before pairing, segment keys are wrapped to a device-local X25519 key (root-only file);
`pair` re-wraps those segments for the guardian and drops the local wraps.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.store import seal
from agent.store.events import Event, EventKind
from agent.store.sqlite import immediate

GENESIS = bytes(32)
DEVICE_LOCAL = "device-local"
GUARDIAN = "guardian"
_CHECKPOINT_TAG = b"minormode/journal/checkpoint/v1"
_ANCHOR_TAG = b"minormode/journal/anchor/v1"
_DELETION_TAG = b"minormode/journal/deletion/v1"

_SCHEMA = """
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


class JournalError(RuntimeError):
    """The journal cannot do what was asked (closed, wrong key, bad arguments)."""


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        raise JournalError(f"instant {at!r} is not timezone-aware")
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def chain_hash(prev: bytes, seq: int, segment_uid: str, nonce: bytes, ciphertext: bytes) -> bytes:
    """SHA-256(prev || seq (8 bytes, big-endian) || segment uid || nonce || ciphertext)."""
    return hashlib.sha256(
        b"".join((prev, seq.to_bytes(8, "big"), segment_uid.encode(), nonce, ciphertext))
    ).digest()


def checkpoint_message(seq: int, head: bytes, at: int) -> bytes:
    return _CHECKPOINT_TAG + struct.pack(">Qq", seq, at) + head


def anchor_message(seq: int, head: bytes) -> bytes:
    return _ANCHOR_TAG + struct.pack(">Q", seq) + head


def deletion_message(at: int, reason: str, segments: int, records: int, up_to_seq: int) -> bytes:
    return _DELETION_TAG + struct.pack(">qQQQ", at, segments, records, up_to_seq) + reason.encode()


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def encode_event(event: Event) -> bytes:
    body = {"kind": event.kind.value, "at": event.at.isoformat(), "data": dict(event.data)}
    return _ENCODER.encode(body).encode()


def decode_event(raw: bytes) -> Event:
    body = json.loads(raw)
    return Event(EventKind(body["kind"]), datetime.fromisoformat(body["at"]), body["data"])


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    segment_uid: str
    event: Event


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    records: int  # records checked
    first_bad: int | None = None  # seq of the first bad record
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"journal ok: {self.records} records, chain and signatures verified"
        return f"journal BAD at record {self.first_bad}: {self.problem}"


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


@dataclass
class _OpenSegment:
    id: int
    uid: str
    opened_at: int
    aead: AESGCM  # the only holder of the segment key; dropped when the segment closes
    records: int = 0
    first_seq: int | None = None  # first and last seq appended to it by this object
    last_seq: int | None = None


_T = TypeVar("_T")
_P = ParamSpec("_P")


def _locked(method: Callable[Concatenate[Journal, _P], _T]) -> Callable[Concatenate[Journal, _P], _T]:
    """Serialise calls on one Journal, so the daemon may flush from a worker thread."""

    @functools.wraps(method)
    def run(journal: Journal, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with journal._lock:
            return method(journal, *args, **kwargs)

    return run


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Journal:
    """The sealed, chained event journal. Implements `EventSink` (durable `record`)."""

    def __init__(
        self,
        path: Path,
        device_key: Ed25519PrivateKey,
        local_key: X25519PrivateKey,
        *,
        clock: Callable[[], datetime] = wall_clock,
        max_segment_records: int = 10_000,
        max_segment_age: timedelta = timedelta(hours=1),
        writer: bool = True,
    ) -> None:
        """`writer=False` opens for verify/read/export: nothing is changed or appended."""
        self.path = path
        self._device_key = device_key
        self._local_key = local_key
        self._clock = clock
        self._max_records = max_segment_records
        self._max_age = _micros(datetime(1970, 1, 1, tzinfo=UTC) + max_segment_age)
        self._lock = threading.RLock()
        self._pending: list[Event] = []
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        if writer:
            os.chmod(path, 0o600)  # SQLite gives the -wal and -shm files the same mode
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        self._segment: _OpenSegment | None = None
        self._closed = False
        self._writer = writer
        # (PRAGMA data_version, head seq, head hash) after our last append: while no other
        # connection has committed since, the head and open segment need no re-reading.
        self._cache: tuple[int, int, bytes] | None = None
        self._head_seq = self._load_head()[0]
        if not writer:
            return
        # A segment left open by a previous run cannot be continued: its key is gone.
        with self._transaction():
            self._db.execute(
                "UPDATE segments SET closed_at = ? WHERE closed_at IS NULL",
                (_micros(self._clock()),),
            )

    # -- life cycle -------------------------------------------------------------------

    @_locked
    def close(self) -> None:
        if self._closed:
            return
        if self._pending and self._writer:
            self.flush()
        self.close_segment()
        self._db.close()
        self._closed = True

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if not self._writer:
            raise JournalError(f"{self.path} is open read-only")
        self._cache = None
        with immediate(self._db) as db:
            yield db

    def _meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def anchor(self) -> tuple[int, bytes]:
        """Where the surviving chain starts: (seq of the last purged record, its hash)."""
        seq = self._meta("base_seq")
        head = self._meta("base_hash")
        return (0 if seq is None else int(seq), GENESIS if head is None else head)

    def _load_head(self) -> tuple[int, bytes]:
        row = self._db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return int(row[0]), bytes(row[1])
        return self.anchor()

    def device_public_key(self) -> Ed25519PublicKey:
        return self._device_key.public_key()

    @property
    def head_seq(self) -> int:
        """The last seq this object appended or found at open (for status displays)."""
        return self._head_seq

    # -- recipients and segments --------------------------------------------------------

    @_locked
    def guardians(self) -> list[X25519PublicKey]:
        rows = self._db.execute("SELECT recipient FROM recipients ORDER BY recipient").fetchall()
        return [seal.public_key_from_hex(r[0]) for r in rows]

    def _open_segment(self, db: sqlite3.Connection) -> _OpenSegment:
        now = _micros(self._clock())
        uid = uuid.uuid4().hex
        key = seal.new_segment_key()
        guardians = self.guardians()
        wraps: list[tuple[str, str, bytes]] = [
            (seal.recipient_id(g), GUARDIAN, seal.wrap_key(key, g, uid)) for g in guardians
        ]
        if not wraps:
            local = self._local_key.public_key()
            wraps.append((seal.recipient_id(local), DEVICE_LOCAL, seal.wrap_key(key, local, uid)))
        cur = db.execute("INSERT INTO segments (uid, opened_at) VALUES (?, ?)", (uid, now))
        seg_id = int(cur.lastrowid or 0)
        db.executemany(
            "INSERT INTO segment_keys (segment_id, recipient, role, wrapped) VALUES (?,?,?,?)",
            [(seg_id, rid, role, w) for rid, role, w in wraps],
        )
        return _OpenSegment(seg_id, uid, now, AESGCM(key))

    @_locked
    def close_segment(self) -> None:
        """Close the open segment and forget its key."""
        if self._segment is None:
            return
        with self._transaction() as db:
            self._close_segment(db)

    def _close_segment(self, db: sqlite3.Connection) -> None:
        """Close it, forget its key, and keep only its last checkpoint (so checkpoints stay
        about one per segment; a rewrite inside a closed segment is still caught, named
        from the segment's first record)."""
        seg, self._segment = self._segment, None
        if seg is None:
            return
        db.execute(
            "UPDATE segments SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
            (_micros(self._clock()), seg.id),
        )
        if seg.first_seq is not None and seg.last_seq is not None:
            db.execute(
                "DELETE FROM checkpoints WHERE seq >= ? AND seq < ?",
                (seg.first_seq, seg.last_seq),
            )

    def _writable_segment(self, db: sqlite3.Connection, unchanged: bool) -> _OpenSegment:
        """The open segment, rotated when full or old, or when another process (a data
        deletion from the CLI) closed or deleted it. Runs inside the append transaction."""
        seg = self._segment
        if seg is not None:
            row = (
                (None,)
                if unchanged
                else db.execute("SELECT closed_at FROM segments WHERE id = ?", (seg.id,)).fetchone()
            )
            if (
                row is None
                or row[0] is not None
                or seg.records >= self._max_records
                or _micros(self._clock()) - seg.opened_at >= self._max_age
            ):
                self._close_segment(db)
                seg = None
        if seg is None:
            seg = self._segment = self._open_segment(db)
        return seg

    # -- appending ----------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """EventSink: append one event durably (one transaction)."""
        self.append([event])

    @_locked
    def append(self, events: Sequence[Event]) -> list[int]:
        """Append events in one transaction; returns their seqs once they are on disk."""
        if not events:
            return []
        plaintexts = [encode_event(e) for e in events]  # bad events fail before any write
        before, cache = self._segment, self._cache
        try:
            with self._transaction() as db:
                version = int(db.execute("PRAGMA data_version").fetchone()[0])
                unchanged = cache is not None and cache[0] == version
                seg = self._writable_segment(db, unchanged)
                seq, prev = cache[1:] if cache is not None and unchanged else self._load_head()
                sealed = seal.seal_batch(seg.aead, seg.uid, seq + 1, plaintexts)
                uid = seg.uid.encode()
                rows = []
                for nonce, ct in sealed:
                    seq += 1
                    digest = hashlib.sha256(
                        b"".join((prev, seq.to_bytes(8, "big"), uid, nonce, ct))
                    ).digest()  # = chain_hash(prev, seq, seg.uid, nonce, ct), inlined
                    rows.append((seq, seg.id, nonce, ct, prev, digest))
                    prev = digest
                at = _micros(self._clock())
                signature = self._device_key.sign(checkpoint_message(seq, prev, at))
                db.executemany(
                    "INSERT INTO records (seq, segment_id, nonce, ciphertext, prev_hash, hash) "
                    "VALUES (?,?,?,?,?,?)",
                    rows,
                )
                db.execute(
                    "INSERT INTO checkpoints (seq, head, at, signature) VALUES (?,?,?,?)",
                    (seq, prev, at, signature),
                )
        except BaseException:
            self._segment = before  # the rollback undid any rotation done in the transaction
            raise
        self._head_seq = seq
        self._cache = (version, seq, prev)
        seg.records += len(rows)
        if seg.first_seq is None:
            seg.first_seq = rows[0][0]
        seg.last_seq = seq
        return [r[0] for r in rows]

    def defer(self, event: Event) -> None:
        """Queue an event for the next `flush` (one transaction for many events). Not yet
        durable: use `record` for events that must survive a crash at once."""
        with self._lock:
            encode_event(event)  # a bad event fails here, not at flush time
            self._pending.append(event)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> list[int]:
        """Append every deferred event in one transaction; returns their seqs."""
        with self._lock:
            events, self._pending = self._pending, []
            try:
                return self.append(events)
            except BaseException:
                self._pending = events + self._pending
                raise

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Collect events and append them in one transaction when the block ends."""
        b = Batch()
        yield b
        b.seqs = self.append(b.events)

    # -- pairing --------------------------------------------------------------------------

    @_locked
    def pair(self, guardians: Iterable[X25519PublicKey]) -> int:
        """Add guardian recipients; re-wrap pre-pairing segments for them. Returns how many."""
        keys = list(guardians)
        if not keys:
            raise JournalError("pairing needs at least one guardian public key")
        now = _micros(self._clock())
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO recipients (recipient, added_at) VALUES (?, ?)",
                [(seal.recipient_id(k), now) for k in keys],
            )
        self.close_segment()  # the next segment is sealed to the guardians only
        return self.rewrap_for_guardians()

    @_locked
    def rewrap_for_guardians(self) -> int:
        """Wrap every segment still sealed to the device-local key to the guardians instead."""
        guardians = self.guardians()
        if not guardians:
            raise JournalError("no guardian is paired")
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
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO segment_keys (segment_id, recipient, role, wrapped) "
                "VALUES (?,?,?,?)",
                inserts,
            )
            db.executemany(
                "DELETE FROM segment_keys WHERE segment_id = ? AND role = ?",
                [(r[0], DEVICE_LOCAL) for r in rows],
            )
        # secure_delete zeroes the old wraps in the database; this drops them from the WAL.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    @_locked
    def forget_guardians(self) -> None:
        """Unpairing: later segments are sealed to the device-local key again."""
        self.close_segment()
        with self._transaction() as db:
            db.execute("DELETE FROM recipients")

    # -- reading ------------------------------------------------------------------------

    @_locked
    def segments(self) -> list[SegmentInfo]:
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
                opened_at=_from_micros(s[2]),
                closed_at=None if s[3] is None else _from_micros(s[3]),
                records=s[4],
                first_seq=s[5],
                last_seq=s[6],
                recipients=tuple(keys.get(s[0], ())),
            )
            for s in segs
        ]

    def read(self, private_key: X25519PrivateKey) -> Iterator[JournalEntry]:
        """Decrypt every segment wrapped to `private_key`; skip the others.

        Raises SealError if a wrap or record meant for this key does not open.
        """
        with self._lock:
            entries = list(self._read(private_key))
        yield from entries

    def _read(self, private_key: X25519PrivateKey) -> Iterator[JournalEntry]:
        rid = seal.recipient_id(private_key.public_key())
        segs = self._db.execute(
            "SELECT s.id, s.uid, k.wrapped FROM segments s JOIN segment_keys k "
            "ON k.segment_id = s.id WHERE k.recipient = ? ORDER BY s.id",
            (rid,),
        ).fetchall()
        # One ordered scan (no index on segment_id: appends stay cheap).
        opened = {
            seg_id: (uid, AESGCM(seal.unwrap_key(bytes(wrapped), private_key, uid)))
            for seg_id, uid, wrapped in segs
        }
        if not opened:
            return
        for seq, seg_id, nonce, ct in self._db.execute(
            "SELECT seq, segment_id, nonce, ciphertext FROM records ORDER BY seq"
        ).fetchall():
            if seg_id in opened:
                uid, aead = opened[seg_id]
                raw = seal.open_record(aead, uid, seq, bytes(nonce), bytes(ct))
                yield JournalEntry(seq, uid, decode_event(raw))

    # -- verification -------------------------------------------------------------------

    @_locked
    def verify(self, device_public_key: Ed25519PublicKey | None = None) -> VerifyReport:
        """Check the chain, the anchor and every checkpoint; name the first bad record."""
        pub = device_public_key or self._device_key.public_key()
        base_seq, base_hash = self.anchor()
        problems: list[tuple[int, str]] = []
        if base_seq > 0:
            sig = self._meta("anchor_sig") or b""
            try:
                pub.verify(sig, anchor_message(base_seq, base_hash))
            except InvalidSignature:
                problems.append((base_seq + 1, "the chain's start (purge anchor) is not signed"))
        uids = dict(self._db.execute("SELECT id, uid FROM segments").fetchall())
        hashes: dict[int, bytes] = {base_seq: base_hash}
        expected, prev, checked = base_seq + 1, base_hash, 0
        for seq, seg_id, nonce, ct, prev_hash, digest in self._db.execute(
            "SELECT seq, segment_id, nonce, ciphertext, prev_hash, hash FROM records ORDER BY seq"
        ):
            checked += 1
            if seq != expected:
                problems.append((expected, f"missing (the next record present is {seq})"))
                break
            uid = uids.get(seg_id)
            if uid is None:
                problems.append((seq, f"belongs to segment {seg_id}, which does not exist"))
                break
            if bytes(prev_hash) != prev:
                problems.append((seq, f"does not follow record {seq - 1} (reordered or replaced)"))
                break
            if chain_hash(prev, seq, uid, bytes(nonce), bytes(ct)) != bytes(digest):
                problems.append((seq, "contents changed (hash mismatch)"))
                break
            hashes[seq] = bytes(digest)
            prev = bytes(digest)
            expected += 1
        head = expected - 1
        last_good_cp = base_seq
        for cp_seq, cp_head, at, signature in self._db.execute(
            "SELECT seq, head, at, signature FROM checkpoints ORDER BY seq"
        ):
            try:
                pub.verify(bytes(signature), checkpoint_message(cp_seq, bytes(cp_head), at))
            except InvalidSignature:
                problems.append((cp_seq, f"checkpoint at record {cp_seq} has a bad signature"))
                break
            if cp_seq < base_seq:
                continue
            if cp_seq > head and not problems:
                problems.append(
                    (head + 1, f"missing: truncated after record {head}, "
                     f"but a signed checkpoint covers {cp_seq}")
                )
                break
            if cp_seq in hashes and hashes[cp_seq] != bytes(cp_head):
                problems.append(
                    (last_good_cp + 1, f"records {last_good_cp + 1}..{cp_seq} were rewritten "
                     "(chain disagrees with a signed checkpoint)")
                )
                break
            last_good_cp = cp_seq
        if head > last_good_cp and not problems:
            problems.append((last_good_cp + 1, f"records after {last_good_cp} have no checkpoint"))
        if problems:
            first, problem = min(problems)
            return VerifyReport(False, checked, first, problem)
        return VerifyReport(True, checked)

    # -- deleting -----------------------------------------------------------------------

    def _drop_prefix(self, db: sqlite3.Connection, segment_ids: list[int]) -> tuple[int, int]:
        """Delete these segments (a prefix of the chain); move the signed anchor past them."""
        if not segment_ids:
            return 0, self.anchor()[0]
        marks = ",".join("?" * len(segment_ids))
        count, last = db.execute(
            f"SELECT count(*), max(seq) FROM records WHERE segment_id IN ({marks})", segment_ids
        ).fetchone()
        if last is not None:
            head = bytes(
                db.execute("SELECT hash FROM records WHERE seq = ?", (last,)).fetchone()[0]
            )
            db.execute("DELETE FROM records WHERE seq <= ?", (last,))
            db.execute("DELETE FROM checkpoints WHERE seq < ?", (last,))
            self._set_meta("base_seq", str(last).encode())
            self._set_meta("base_hash", head)
            self._set_meta("anchor_sig", self._device_key.sign(anchor_message(last, head)))
        db.execute(f"DELETE FROM segments WHERE id IN ({marks})", segment_ids)
        return int(count), self.anchor()[0] if last is None else int(last)

    @_locked
    def purge_before(self, cutoff: datetime) -> PurgeResult:
        """Delete closed segments that closed before `cutoff` (oldest first, a prefix)."""
        limit = _micros(cutoff)
        ids: list[int] = []
        for seg_id, closed in self._db.execute(
            "SELECT id, closed_at FROM segments ORDER BY id"
        ).fetchall():
            if closed is None or closed >= limit:
                break
            ids.append(seg_id)
        with self._transaction() as db:
            records, up_to = self._drop_prefix(db, ids)
        return PurgeResult(len(ids), records, up_to)

    @_locked
    def apply_retention(self, retention_days: int) -> PurgeResult:
        """Purge what is older than the policy's retention and journal that it happened."""
        if retention_days < 1:
            raise JournalError(f"retention_days must be at least 1, not {retention_days}")
        now = self._clock()
        cutoff = now - timedelta(days=retention_days)
        result = self.purge_before(cutoff)
        if result.segments:
            self.record(
                Event(
                    EventKind.RETENTION_PURGE,
                    now,
                    {
                        "segments": result.segments,
                        "records": result.records,
                        "up_to_seq": result.up_to_seq,
                        "cutoff": cutoff.isoformat(),
                        "retention_days": retention_days,
                    },
                )
            )
        return result

    @_locked
    def delete_all(self, reason: str) -> DeletionReceipt:
        """Delete every segment and record; keep a signed receipt to confirm to the guardian."""
        if not reason or len(reason) > 200:
            raise JournalError("a deletion needs a reason of 1-200 characters")
        self.close_segment()
        at = _micros(self._clock())
        ids = [r[0] for r in self._db.execute("SELECT id FROM segments ORDER BY id")]
        with self._transaction() as db:
            records, up_to = self._drop_prefix(db, ids)
            db.execute("DELETE FROM checkpoints")
            sig = self._device_key.sign(deletion_message(at, reason, len(ids), records, up_to))
            cur = db.execute(
                "INSERT INTO deletions (at, reason, segments, records, up_to_seq, signature) "
                "VALUES (?,?,?,?,?,?)",
                (at, reason, len(ids), records, up_to, sig),
            )
            receipt_id = int(cur.lastrowid or 0)
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return DeletionReceipt(receipt_id, _from_micros(at), reason, len(ids), records, up_to, sig)

    @_locked
    def deletion_receipts(self, unsynced_only: bool = False) -> list[DeletionReceipt]:
        query = "SELECT id, at, reason, segments, records, up_to_seq, signature FROM deletions"
        if unsynced_only:
            query += " WHERE synced = 0"
        return [
            DeletionReceipt(r[0], _from_micros(r[1]), r[2], r[3], r[4], r[5], bytes(r[6]))
            for r in self._db.execute(query + " ORDER BY id")
        ]

    @_locked
    def export_rows(self) -> dict[str, Any]:
        """Everything held, still sealed, as plain data (for `datarights.export`)."""
        base_seq, base_hash = self.anchor()
        by_segment: dict[int, list[dict[str, Any]]] = {}
        for seq, seg, n, c, p, h in self._db.execute(
            "SELECT seq, segment_id, nonce, ciphertext, prev_hash, hash FROM records ORDER BY seq"
        ):
            by_segment.setdefault(seg, []).append(
                {
                    "seq": seq,
                    "nonce": bytes(n).hex(),
                    "ciphertext": bytes(c).hex(),
                    "prev_hash": bytes(p).hex(),
                    "hash": bytes(h).hex(),
                }
            )
        return {
            "anchor": {
                "seq": base_seq,
                "hash": base_hash.hex(),
                "signature": (self._meta("anchor_sig") or b"").hex(),
            },
            "segments": [
                {
                    "uid": uid,
                    "opened_at": _from_micros(opened).isoformat(),
                    "closed_at": None if closed is None else _from_micros(closed).isoformat(),
                    "keys": [
                        {"recipient": rid, "role": role, "wrapped": bytes(w).hex()}
                        for rid, role, w in self._db.execute(
                            "SELECT recipient, role, wrapped FROM segment_keys "
                            "WHERE segment_id = ?",
                            (seg_id,),
                        )
                    ],
                    "records": by_segment.get(seg_id, []),
                }
                for seg_id, uid, opened, closed in self._db.execute(
                    "SELECT id, uid, opened_at, closed_at FROM segments ORDER BY id"
                ).fetchall()
            ],
            "checkpoints": [
                {"seq": s, "head": bytes(h).hex(), "at": at, "signature": bytes(sig).hex()}
                for s, h, at, sig in self._db.execute(
                    "SELECT seq, head, at, signature FROM checkpoints ORDER BY seq"
                )
            ],
        }


@dataclass
class Batch:
    """Events gathered by `Journal.batch()`; `seqs` is filled once they are on disk."""

    events: list[Event] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def record(self, event: Event) -> None:
        self.events.append(event)
