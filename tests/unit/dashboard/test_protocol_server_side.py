"""The protocol pieces the server checks: the journal's wire format against the agent's
real Journal (chain, checkpoints, anchors), the server's signed time and receipts, and
the device log-in message."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.store.events import Event, EventKind
from agent.store.journal import Journal
from protocol.errors import ProtocolError, SignatureError
from protocol.journal import (
    Anchor,
    ChainError,
    Checkpoint,
    WireRecord,
    chain_hash,
    check_range,
    verify_anchor,
)
from protocol.server import (
    ServerReceipt,
    device_login_message,
    server_time_message,
    sign_receipt,
    verify_receipt,
    verify_server_time,
)


def _journal(tmp_path, n: int) -> tuple[Journal, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    j = Journal(tmp_path / "j.sqlite", key, X25519PrivateKey.generate(), clock=lambda: datetime.now(UTC))
    for i in range(n):
        j.append([Event(EventKind.LOCK, datetime.now(UTC), {"i": i})])
    return j, key


def _wire(path) -> tuple[list[WireRecord], list[Checkpoint]]:
    db = sqlite3.connect(path)
    recs = [
        WireRecord(s, u, bytes(n), bytes(c))
        for s, u, n, c in db.execute(
            "SELECT r.seq, s.uid, r.nonce, r.ciphertext FROM records r JOIN segments s ON s.id = r.segment_id ORDER BY seq"
        )
    ]
    cps = [
        Checkpoint(s, bytes(h), a, bytes(g))
        for s, h, a, g in db.execute("SELECT seq, head, at, signature FROM checkpoints ORDER BY seq")
    ]
    db.close()
    return recs, cps


def test_chain_hash_matches_the_agent_journal(tmp_path) -> None:
    j, key = _journal(tmp_path, 4)
    recs, cps = _wire(j.path)
    stored = sqlite3.connect(j.path).execute("SELECT hash FROM records WHERE seq = 1").fetchone()[0]
    assert chain_hash(bytes(32), 1, recs[0].segment, recs[0].nonce, recs[0].ciphertext) == bytes(stored)
    result = check_range(0, bytes(32), recs, cps, key.public_key())
    assert result.verified == 4 and len(result.hashes) == 4
    mid = check_range(2, result.hashes[1], recs[2:], cps, key.public_key())
    assert mid.verified == 4
    j.close()


def test_check_range_names_the_first_bad_record(tmp_path) -> None:
    j, key = _journal(tmp_path, 5)
    recs, cps = _wire(j.path)
    bad = [
        *recs[:2],
        WireRecord(3, recs[2].segment, recs[2].nonce, recs[2].ciphertext[:-1] + b"\x00"),
        *recs[3:],
    ]
    with pytest.raises(ChainError) as err:
        check_range(0, bytes(32), bad, cps, key.public_key())
    assert err.value.seq == 3
    with pytest.raises(ChainError) as err:
        check_range(0, bytes(32), recs, cps, Ed25519PrivateKey.generate().public_key())
    assert err.value.seq == 1 and "signature" in err.value.where
    with pytest.raises(ChainError) as err:
        check_range(0, bytes(32), [recs[0], recs[2]], [], key.public_key())
    assert err.value.seq == 2
    with pytest.raises(ChainError):
        check_range(0, bytes(32), recs[:2], cps, key.public_key())  # a checkpoint beyond the records
    with pytest.raises(ChainError):
        check_range(0, bytes(32), recs, list(reversed(cps)), key.public_key())
    unvouched = check_range(0, bytes(32), recs, [], key.public_key())
    assert unvouched.verified == 0 and len(unvouched.hashes) == 5
    j.close()


def test_purge_anchor_is_verified(tmp_path) -> None:
    j, key = _journal(tmp_path, 3)
    j.close_segment()
    j.delete_all("test")
    db = sqlite3.connect(j.path)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    db.close()
    anchor = Anchor(int(meta["base_seq"]), bytes(meta["base_hash"]), bytes(meta["anchor_sig"]))
    verify_anchor(anchor, key.public_key())
    with pytest.raises(ChainError):
        verify_anchor(Anchor(anchor.seq + 1, anchor.head, anchor.signature), key.public_key())
    j.close()


def test_server_time_and_receipt_signatures() -> None:
    key = Ed25519PrivateKey.generate()
    nonce = bytes(range(16))
    sig = key.sign(server_time_message(1_800_000_000, nonce))
    verify_server_time(key.public_key(), 1_800_000_000, nonce, sig)
    with pytest.raises(SignatureError):
        verify_server_time(key.public_key(), 1_800_000_001, nonce, sig)
    with pytest.raises(ProtocolError):
        server_time_message(1, b"short")
    receipt = ServerReceipt(
        "ab" * 16, "cd" * 16, "ef" * 16, "unpair", None, 1_800_000_000, {"journal_records": 3, "summaries": 1}
    )
    signed = sign_receipt(receipt, key)
    assert verify_receipt(signed, key.public_key()) == receipt
    with pytest.raises(SignatureError):
        verify_receipt(signed, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ProtocolError):
        verify_receipt(signed | {"extra": 1}, key.public_key())


def test_login_message_binds_origin_nonce_and_device() -> None:
    a = device_login_message("https://a.example", bytes(32), "00" * 16)
    assert a != device_login_message("https://b.example", bytes(32), "00" * 16)
    assert a != device_login_message("https://a.example", bytes(31) + b"\x01", "00" * 16)
    assert a.startswith(b"minormode/v1/device-login\x00https://a.example\x00")
    with pytest.raises(ProtocolError):
        device_login_message("https://a.example\x00x", bytes(32), "00" * 16)
