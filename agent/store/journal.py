"""The journal: every event about the child, sealed for the guardian and hash-chained.

Append-only SQLite (WAL, synchronous=FULL): once `record`/`append` returns, the event is
on disk and survives kill -9 or a power cut. Records are grouped in segments, each
sealed under a key only the open segment's object holds (`agent.store.segments`), so
the device cannot read its own past.

Tamper evidence (`agent.store.chain`, pure): each record stores the hash of the one
before (the chain runs across segments); each commit adds a checkpoint (head seq, head
hash) signed with the device's Ed25519 key, so editing, deleting, reordering or cutting
off records is found by `verify`. When old records are purged (`agent.store.retention`)
a signed anchor records where the surviving chain starts. A thief with root and the
device key could rewrite everything; checkpoints synced to the guardian catch that.

`Journal` is the facade the daemon and the CLI use (and the daemon's `EventSink`); every
event time it stamps itself (segment open/close, checkpoints, retention, deletion) comes
from the `clock` it is given: the daemon's trusted time.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.store import chain, journaldb, retention, seal
from agent.store.chain import VerifyReport, chain_hashes, checkpoint_message
from agent.store.events import Event, EventKind
from agent.store.retention import DeletionReceipt, PurgeResult
from agent.store.segments import SegmentInfo, Segments
from agent.store.sqlite import immediate, micros
from protocol.journal import MAX_UPLOAD_RECORDS, MAX_UPLOAD_SEGMENTS


class JournalError(RuntimeError):
    """The journal cannot do what was asked (closed, wrong key, bad arguments)."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def encode_event(event: Event) -> bytes:
    """A record's plaintext (before sealing): canonical JSON of kind, time and data."""
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


_T = TypeVar("_T")
_P = ParamSpec("_P")


def _locked(method: Callable[Concatenate[Journal, _P], _T]) -> Callable[Concatenate[Journal, _P], _T]:
    """Serialise calls on one Journal, so the daemon may flush from a worker thread."""

    @functools.wraps(method)
    def run(journal: Journal, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with journal._lock:
            return method(journal, *args, **kwargs)

    return run


class Journal:
    """The sealed, chained event journal. Implements `EventSink` (durable `record`)."""

    def __init__(
        self,
        path: Path,
        device_key: Ed25519PrivateKey,
        local_key: X25519PrivateKey,
        *,
        clock: Callable[[], datetime],
        max_segment_records: int = 10_000,
        max_segment_age: timedelta = timedelta(hours=1),
        writer: bool = True,
    ) -> None:
        """`clock` stamps checkpoints, segments, retention and deletions (the daemon's
        trusted time; `minormodectl` has only the wall clock). `writer=False` opens for
        verify/read/export: nothing is changed or appended."""
        self.path = path
        self._device_key = device_key
        self._clock = clock
        self._lock = threading.RLock()
        self._pending: list[Event] = []
        self._db = journaldb.connect(path, writer=writer)
        self._segments = Segments(
            self._db, local_key, clock, max_records=max_segment_records, max_age=max_segment_age
        )
        self._closed = False
        self._writer = writer
        # (PRAGMA data_version, head seq, head hash) after our last append: while no other
        # connection has committed since, the head and open segment need no re-reading.
        self._cache: tuple[int, int, bytes] | None = None
        self._head_seq = journaldb.head(self._db)[0]
        if writer:
            with self._transaction():
                self._segments.close_abandoned()

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

    def anchor(self) -> tuple[int, bytes]:
        """Where the surviving chain starts: (seq of the last purged record, its hash)."""
        a = retention.load_anchor(self._db)
        return a.seq, a.hash

    def device_public_key(self) -> Ed25519PublicKey:
        return self._device_key.public_key()

    @property
    def head_seq(self) -> int:
        """The last seq this object appended or found at open (for status displays)."""
        return self._head_seq

    # -- recipients and segments --------------------------------------------------------

    @_locked
    def guardians(self) -> list[X25519PublicKey]:
        return self._segments.guardians()

    @_locked
    def close_segment(self) -> None:
        """Close the open segment and forget its key."""
        if self._segments.current is None:
            return
        with self._transaction():
            self._segments.close_current()

    @_locked
    def segments(self) -> list[SegmentInfo]:
        return self._segments.infos()

    # -- appending ----------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """EventSink: append one event durably (one transaction)."""
        self.append([event])

    def record_many(self, events: Sequence[Event]) -> None:
        """BatchEventSink: append events durably in one transaction."""
        self.append(events)

    @_locked
    def append(self, events: Sequence[Event]) -> list[int]:
        """Append events in one transaction; returns their seqs once they are on disk."""
        if not events:
            return []
        plaintexts = [encode_event(e) for e in events]  # bad events fail before any write
        segments = self._segments
        before, cache = segments.current, self._cache
        try:
            with self._transaction() as db:
                version = int(db.execute("PRAGMA data_version").fetchone()[0])
                unchanged = cache is not None and cache[0] == version
                seg = segments.writable(unchanged)
                head, prev = cache[1:] if cache is not None and unchanged else journaldb.head(self._db)
                sealed = seal.seal_batch(seg.aead, seg.uid, head + 1, plaintexts)
                hashes = chain_hashes(prev, head + 1, seg.uid, sealed)
                seg_id = seg.id
                rows = []
                seq = head
                for (nonce, ct), digest in zip(sealed, hashes, strict=True):
                    seq += 1
                    rows.append((seq, seg_id, nonce, ct, prev, digest))
                    prev = digest
                at = micros(self._clock())
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
            segments.current = before  # the rollback undid any rotation done in the transaction
            raise
        self._head_seq = seq
        self._cache = (version, seq, prev)
        seg.records += len(rows)
        if seg.first_seq is None:
            seg.first_seq = head + 1
        seg.last_seq = seq
        return list(range(head + 1, seq + 1))

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
        with self._transaction():
            self._segments.add_guardians(keys)
        self.close_segment()  # the next segment is sealed to the guardians only
        return self.rewrap_for_guardians()

    @_locked
    def rewrap_for_guardians(self) -> int:
        """Wrap every segment still sealed to the device-local key to the guardians instead."""
        guardians = self._segments.guardians()
        if not guardians:
            raise JournalError("no guardian is paired")
        rewraps = self._segments.local_wraps_for(guardians)
        with self._transaction():
            self._segments.rewrap(rewraps)
        # secure_delete zeroes the old wraps in the database; this drops them from the WAL.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rewraps.segment_ids)

    @_locked
    def forget_guardians(self) -> None:
        """Unpairing: later segments are sealed to the device-local key again."""
        self.close_segment()
        with self._transaction():
            self._segments.forget_guardians()

    # -- reading ------------------------------------------------------------------------

    def read(self, private_key: X25519PrivateKey) -> Iterator[JournalEntry]:
        """Decrypt every segment wrapped to `private_key`; skip the others.

        Raises SealError if a wrap or record meant for this key does not open.
        """
        with self._lock:
            entries = list(self._read(private_key))
        yield from entries

    def _read(self, private_key: X25519PrivateKey) -> Iterator[JournalEntry]:
        opened = self._segments.opened_for(private_key)
        if not opened:
            return
        # One ordered scan (no index on segment_id: appends stay cheap).
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
        with journaldb.snapshot(self._db) as db:
            return chain.verify(
                retention.load_anchor(db), journaldb.chain_records(db), journaldb.checkpoints(db), pub
            )

    @_locked
    def damage_after(self, after: int) -> tuple[int, chain.Anchor] | None:
        """Records after seq `after` damaged in place (`chain.find_damage`): the first of
        them, and a signed anchor where the chain resumes, so an upload the dashboard
        refuses for that damage can go on past it (the sync records what was left out).
        None when nothing after `after` is damaged that way or nothing vouches for a resume."""
        with journaldb.snapshot(self._db) as db:
            damage = chain.find_damage(journaldb.chain_records(db, after), journaldb.checkpoints(db),
                                       self._device_key.public_key())
        if damage is None:
            return None
        cp = damage.resume
        signature = self._device_key.sign(chain.anchor_message(cp.seq, cp.head))
        return damage.first, chain.Anchor(cp.seq, cp.head, signature)

    # -- deleting -----------------------------------------------------------------------

    @_locked
    def purge_before(self, cutoff: datetime) -> PurgeResult:
        """Delete closed segments that closed before `cutoff` (oldest first, a prefix)."""
        with self._transaction() as db:
            ids = retention.closed_before(db, micros(cutoff))
            records, up_to = retention.drop_prefix(db, ids, self._device_key)
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
        at = micros(self._clock())
        with self._transaction() as db:
            receipt = retention.delete_everything(db, self._device_key, at, reason)
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return receipt

    @_locked
    def deletion_receipts(self, unsynced_only: bool = False) -> list[DeletionReceipt]:
        return retention.receipts(self._db, unsynced_only)

    @_locked
    def wire_range(self, after: int, limit: int = MAX_UPLOAD_RECORDS,
                   max_segments: int = MAX_UPLOAD_SEGMENTS) -> journaldb.WireRange:
        """Records after seq `after` for an upload to the dashboard (sealed as stored), within
        one upload's bounds (protocol.journal)."""
        with journaldb.snapshot(self._db) as db:
            return journaldb.wire_range(db, after, limit, max_segments)

    @_locked
    def export_rows(self) -> dict[str, Any]:
        """Everything held, still sealed, as plain data (for `datarights.export`)."""
        with journaldb.snapshot(self._db) as db:
            return journaldb.export_rows(db)


@dataclass
class Batch:
    """Events gathered by `Journal.batch()`; `seqs` is filled once they are on disk."""

    events: list[Event] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def record(self, event: Event) -> None:
        self.events.append(event)
