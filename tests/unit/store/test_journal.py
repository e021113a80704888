"""The journal: sealed for the guardian, chained, and honest about tampering."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.store import seal
from agent.store.events import Event, EventKind
from agent.store.journal import Journal, JournalError

from .conftest import FakeClock, Keys  # type: ignore[import-not-found]


def _events(clock: FakeClock, n: int, kind: EventKind = EventKind.DNS_BLOCKED) -> list[Event]:
    return [Event(kind, clock.now, {"domain": f"site{i}.example", "i": i}) for i in range(n)]


def _paired_with_records(journal: Journal, keys: Keys, clock: FakeClock, n: int = 10) -> None:
    journal.pair([keys.guardian.public_key()])
    for ev in _events(clock, n):  # one commit (and checkpoint) each
        journal.record(ev)


def _raw(journal: Journal) -> sqlite3.Connection:
    return sqlite3.connect(journal.path, isolation_level=None)


def test_guardian_key_reads_back_every_event_in_order(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    journal.record(Event(EventKind.AGENT_START, clock.now, {}))  # before pairing
    journal.pair([keys.guardian.public_key()])
    seqs = journal.append(_events(clock, 3))
    entries = list(journal.read(keys.guardian))
    assert [e.seq for e in entries] == [1, *seqs] == [1, 2, 3, 4]
    assert entries[0].event.kind is EventKind.AGENT_START
    assert [e.event.data["i"] for e in entries[1:]] == [0, 1, 2]
    assert entries[1].event.at == clock.now
    assert journal.verify().ok


def test_another_key_reads_nothing_and_records_are_not_plaintext(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock, 3)
    assert list(journal.read(X25519PrivateKey.generate())) == []
    blob = journal.path.read_bytes() + Path(str(journal.path) + "-wal").read_bytes()
    assert b"site1.example" not in blob
    assert b"dns_blocked" not in blob


def test_device_cannot_decrypt_a_closed_segment_after_pairing(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    journal.record(Event(EventKind.LOCK, clock.now, {}))  # sealed to the device-local key
    assert [e.seq for e in journal.read(keys.local)] == [1]  # before pairing the device can
    journal.pair([keys.guardian.public_key()])
    journal.append(_events(clock, 2))
    journal.close_segment()
    assert list(journal.read(keys.local)) == []  # local wraps gone, nothing for the device
    assert all(role == "guardian" for s in journal.segments() for role, _ in s.recipients)
    assert journal._segments.current is None  # no segment key left in memory
    assert len(list(journal.read(keys.guardian))) == 3


def test_segment_rotates_and_key_is_fresh(
    tmp_path: Path, keys: Keys, clock: FakeClock
) -> None:
    j = Journal(tmp_path / "j.db", keys.device, keys.local, clock=clock, max_segment_records=2)
    j.pair([keys.guardian.public_key()])
    for ev in _events(clock, 5):
        j.record(ev)
    clock.advance(hours=2)
    j.record(Event(EventKind.LOCK, clock.now, {}))
    segs = j.segments()
    assert [s.records for s in segs] == [2, 2, 1, 1]
    assert len({s.uid for s in segs}) == 4
    assert j.verify().ok
    j.close()


def test_reopen_continues_chain_in_a_new_segment(
    tmp_path: Path, keys: Keys, clock: FakeClock
) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, keys.device, keys.local, clock=clock)
    j.pair([keys.guardian.public_key()])
    j.append(_events(clock, 3))
    j._db.close()  # crash: the open segment is never closed by us
    j2 = Journal(path, keys.device, keys.local, clock=clock)
    assert all(s.closed_at is not None for s in j2.segments())
    j2.append(_events(clock, 2))
    assert [s.records for s in j2.segments()] == [3, 2]
    assert j2.verify().ok
    assert [e.seq for e in j2.read(keys.guardian)] == [1, 2, 3, 4, 5]
    j2.close()


# -- tampering ----------------------------------------------------------------------------


def test_edit_is_found_at_the_edited_record(journal: Journal, keys: Keys, clock: FakeClock) -> None:
    _paired_with_records(journal, keys, clock)
    db = _raw(journal)
    ct = db.execute("SELECT ciphertext FROM records WHERE seq = 4").fetchone()[0]
    db.execute("UPDATE records SET ciphertext = ? WHERE seq = 4", (bytes([ct[0] ^ 1]) + ct[1:],))
    report = journal.verify()
    assert not report.ok
    assert report.first_bad == 4
    assert "changed" in report.problem


def test_edit_with_rehashed_chain_is_caught_by_the_signed_checkpoints(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    from agent.store.chain import chain_hash

    _paired_with_records(journal, keys, clock)
    db = _raw(journal)
    rows = db.execute(
        "SELECT r.seq, s.uid, r.nonce, r.ciphertext FROM records r "
        "JOIN segments s ON s.id = r.segment_id ORDER BY seq"
    ).fetchall()
    prev = bytes(db.execute("SELECT prev_hash FROM records WHERE seq = 1").fetchone()[0])
    for seq, uid, nonce, original in rows:  # forge record 6, re-hash the chain from there on
        ct = bytes([original[0] ^ 1]) + original[1:] if seq == 6 else original
        digest = chain_hash(prev, seq, uid, nonce, ct)
        db.execute(
            "UPDATE records SET ciphertext = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (ct, prev, digest, seq),
        )
        prev = digest
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, 6)
    assert "checkpoint" in report.problem


def test_delete_is_found_at_the_missing_record(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock)
    _raw(journal).execute("DELETE FROM records WHERE seq = 7")
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, 7)
    assert "missing" in report.problem


def test_reorder_is_found_at_the_first_moved_record(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock)
    db = _raw(journal)
    db.execute("UPDATE records SET seq = -1 WHERE seq = 5")
    db.execute("UPDATE records SET seq = 5 WHERE seq = 6")
    db.execute("UPDATE records SET seq = 6 WHERE seq = -1")
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, 5)


def test_truncation_is_found_after_the_last_record_kept(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock)
    _raw(journal).execute("DELETE FROM records WHERE seq > 8")
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, 9)
    assert "truncated" in report.problem


def test_forged_checkpoint_signature_is_found(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock)
    _raw(journal).execute("UPDATE checkpoints SET signature = zeroblob(64) WHERE seq = 3")
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, 3)
    assert "signature" in report.problem


def test_untampered_journal_verifies(journal: Journal, keys: Keys, clock: FakeClock) -> None:
    _paired_with_records(journal, keys, clock)
    report = journal.verify()
    assert report.ok and report.records == 10 and report.first_bad is None


def test_tampered_ciphertext_does_not_decrypt(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock, 3)
    db = _raw(journal)
    ct = db.execute("SELECT ciphertext FROM records WHERE seq = 2").fetchone()[0]
    db.execute("UPDATE records SET ciphertext = ? WHERE seq = 2", (ct[:-1] + bytes([ct[-1] ^ 1]),))
    with pytest.raises(seal.SealError, match="record 2"):
        list(journal.read(keys.guardian))


# -- retention and deletion -----------------------------------------------------------------


def test_retention_removes_exactly_the_old_segments(
    tmp_path: Path, keys: Keys, clock: FakeClock
) -> None:
    j = Journal(tmp_path / "j.db", keys.device, keys.local, clock=clock)
    j.pair([keys.guardian.public_key()])
    for _day in range(10):  # one closed segment per day, 3 records each
        j.append(_events(clock, 3))
        j.close_segment()
        clock.advance(days=1)
    # now = day 10 at 12:00; segments closed on day d at 12:00. Keep 3 days: cutoff day 7.
    result = j.apply_retention(3)
    assert (result.segments, result.records, result.up_to_seq) == (7, 21, 21)
    remaining = [e for e in j.read(keys.guardian)]
    kept = [e for e in remaining if e.event.kind is EventKind.DNS_BLOCKED]
    assert [e.seq for e in kept] == list(range(22, 31))
    purge = [e for e in remaining if e.event.kind is EventKind.RETENTION_PURGE]
    assert len(purge) == 1
    assert purge[0].event.data["segments"] == 7 and purge[0].event.data["records"] == 21
    assert j.verify().ok
    assert j.apply_retention(3).segments == 0  # nothing more is old enough
    j.close()


def test_retention_anchor_forgery_is_found(
    tmp_path: Path, keys: Keys, clock: FakeClock
) -> None:
    j = Journal(tmp_path / "j.db", keys.device, keys.local, clock=clock)
    j.pair([keys.guardian.public_key()])
    for _ in range(3):
        j.append(_events(clock, 2))
        j.close_segment()
        clock.advance(days=2)
    j.apply_retention(3)
    db = _raw(j)
    db.execute("UPDATE meta SET value = ? WHERE key = 'base_seq'", (b"1",))
    report = j.verify()
    assert not report.ok and report.first_bad == 2
    j.close()


def test_retention_rejects_nonsense(journal: Journal) -> None:
    with pytest.raises(JournalError, match="retention_days"):
        journal.apply_retention(0)


def test_delete_all_leaves_a_signed_receipt_and_a_valid_empty_chain(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    _paired_with_records(journal, keys, clock, 4)
    receipt = journal.delete_all("guardian request")
    assert (receipt.segments, receipt.records, receipt.up_to_seq) == (1, 4, 4)
    assert journal.segments() == [] and list(journal.read(keys.guardian)) == []
    assert journal.verify().ok
    assert journal.deletion_receipts(unsynced_only=True) == [receipt]
    journal.record(Event(EventKind.LOCK, clock.now, {}))
    assert [e.seq for e in journal.read(keys.guardian)] == [5]
    assert journal.verify().ok


def test_pair_without_keys_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError, match="guardian"):
        journal.pair([])


def test_bad_event_changes_nothing(journal: Journal, clock: FakeClock) -> None:
    bad = Event(EventKind.LOCK, clock.now, {"x": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        journal.append([Event(EventKind.LOCK, clock.now, {}), bad])
    assert journal.segments() == []
    assert journal.verify().ok and journal.verify().records == 0


def test_old_segments_expire_by_age(tmp_path: Path, keys: Keys, clock: FakeClock) -> None:
    j = Journal(
        tmp_path / "j.db", keys.device, keys.local, clock=clock,
        max_segment_age=timedelta(minutes=10),
    )
    j.record(Event(EventKind.LOCK, clock.now, {}))
    clock.advance(minutes=11)
    j.record(Event(EventKind.UNLOCK, clock.now, {}))
    assert [s.records for s in j.segments()] == [1, 1]
    j.close()


def test_deferred_events_land_in_one_transaction_on_flush(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    journal.pair([keys.guardian.public_key()])
    for ev in _events(clock, 4):
        journal.defer(ev)
    assert journal.pending == 4 and list(journal.read(keys.guardian)) == []
    assert journal.flush() == [1, 2, 3, 4]
    assert journal.pending == 0 and journal.flush() == []
    db = _raw(journal)
    assert db.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1  # one commit
    with pytest.raises(TypeError):
        journal.defer(Event(EventKind.LOCK, clock.now, {"x": object()}))  # type: ignore[dict-item]
    assert journal.pending == 0


def test_appends_from_several_threads_keep_one_chain(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    import threading

    journal.pair([keys.guardian.public_key()])
    def writer() -> None:
        for e in _events(clock, 20):
            journal.record(e)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.verify().ok
    assert [e.seq for e in journal.read(keys.guardian)] == list(range(1, 81))


def test_a_second_writer_is_noticed(tmp_path: Path, keys: Keys, clock: FakeClock) -> None:
    """The CLI deleting data while the daemon's journal is open: the daemon carries on
    in a fresh segment and the chain stays valid."""
    path = tmp_path / "j.db"
    daemon = Journal(path, keys.device, keys.local, clock=clock)
    daemon.pair([keys.guardian.public_key()])
    daemon.append(_events(clock, 3))
    cli = Journal(path, keys.device, keys.local, clock=clock)
    cli.delete_all("guardian request")
    cli.close()
    assert daemon.append(_events(clock, 2)) == [4, 5]
    assert [s.records for s in daemon.segments()] == [2]
    assert daemon.verify().ok
    assert [e.seq for e in daemon.read(keys.guardian)] == [4, 5]
    daemon.close()


@pytest.mark.parametrize(
    ("tamper", "position"),
    [
        (t, p)
        for t in ("edit", "delete", "swap_with_next", "truncate")
        for p in (1, 2, 5, 9, 10)
        if not (t == "swap_with_next" and p == 10)  # the last record has no next one
    ],
)
def test_every_tamper_is_found_exactly_where_it_happened(
    journal: Journal, keys: Keys, clock: FakeClock, tamper: str, position: int
) -> None:
    _paired_with_records(journal, keys, clock, 10)
    db = _raw(journal)
    if tamper == "edit":
        db.execute("UPDATE records SET nonce = zeroblob(12) WHERE seq = ?", (position,))
    elif tamper == "delete":
        db.execute("DELETE FROM records WHERE seq = ?", (position,))
    elif tamper == "truncate":
        db.execute("DELETE FROM records WHERE seq >= ?", (position,))
    else:
        db.execute("UPDATE records SET seq = -1 WHERE seq = ?", (position,))
        db.execute("UPDATE records SET seq = ? WHERE seq = ?", (position, position + 1))
        db.execute("UPDATE records SET seq = ? WHERE seq = -1", (position + 1,))
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, position), report.problem


def test_closed_segments_keep_one_checkpoint_and_stay_verifiable(
    journal: Journal, keys: Keys, clock: FakeClock
) -> None:
    from agent.store.chain import chain_hash

    journal.pair([keys.guardian.public_key()])
    for ev in _events(clock, 6):
        journal.record(ev)
    journal.close_segment()
    for ev in _events(clock, 3):
        journal.record(ev)
    db = _raw(journal)
    assert [r[0] for r in db.execute("SELECT seq FROM checkpoints ORDER BY seq")] == [6, 7, 8, 9]
    assert journal.verify().ok
    # A rewrite inside the closed segment with re-computed hashes is still found.
    rows = db.execute(
        "SELECT r.seq, s.uid, r.nonce, r.ciphertext FROM records r "
        "JOIN segments s ON s.id = r.segment_id WHERE r.seq >= 4 ORDER BY seq"
    ).fetchall()
    prev = bytes(db.execute("SELECT hash FROM records WHERE seq = 3").fetchone()[0])
    for seq, uid, nonce, original in rows:
        ct = bytes([original[0] ^ 1]) + original[1:] if seq == 4 else original
        digest = chain_hash(prev, seq, uid, nonce, ct)
        db.execute("UPDATE records SET ciphertext = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                   (ct, prev, digest, seq))
        prev = digest
    report = journal.verify()
    assert (report.ok, report.first_bad) == (False, 1)  # named from the segment's start
    assert "1..6" in report.problem


def test_files_are_private(journal: Journal, keys: Keys, clock: FakeClock) -> None:
    journal.record(Event(EventKind.LOCK, clock.now, {}))
    for suffix in ("", "-wal", "-shm"):
        mode = Path(str(journal.path) + suffix).stat().st_mode & 0o777
        assert mode == 0o600, f"{suffix or 'db'}: {oct(mode)}"
