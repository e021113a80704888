"""The guardian's rights over the child's data on the device: see, copy, delete (Reg. 34,
Prov. 19-20).

What the device can tell without the guardian's key is deliberately little: per segment,
when it was opened and closed, how many records it holds and to whom it is sealed, and
how many purchases the ledger holds. Event kinds stay inside the sealed records, never in
clear metadata: even a count of "report" or "dns_blocked" events says something about
the child. With the guardian's key, `kinds` opens the records and counts them by kind.

Export writes the sealed segments as they are (plus the signed checkpoints and anchor) to
one JSON file the guardian can take; `read_export` opens it with the guardian's key and
checks its chain. Deletion removes every segment and purchase and keeps a signed receipt,
to be confirmed to the guardian once sync exists.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.store import seal
from agent.store.journal import (
    DeletionReceipt,
    Journal,
    JournalEntry,
    SegmentInfo,
    chain_hash,
    decode_event,
)
from agent.store.ledger import Ledger

EXPORT_FORMAT = "minormode-journal-export/1"


class ExportError(ValueError):
    """An export file that is malformed or whose chain does not hold."""


@dataclass(frozen=True)
class Holdings:
    segments: list[SegmentInfo]
    records: int
    purchases: int
    deletion_receipts: list[DeletionReceipt]


def holdings(journal: Journal, ledger: Ledger | None = None) -> Holdings:
    segs = journal.segments()
    return Holdings(
        segments=segs,
        records=sum(s.records for s in segs),
        purchases=0 if ledger is None else ledger.count(),
        deletion_receipts=journal.deletion_receipts(),
    )


def kinds(journal: Journal, private_key: X25519PrivateKey) -> Counter[str]:
    """Records by event kind; needs the guardian's key because kinds are sealed."""
    return Counter(e.event.kind.value for e in journal.read(private_key))


def export(journal: Journal, path: Path) -> int:
    """Write every sealed segment to `path` (0600, atomically); returns the record count."""
    body = journal.export_rows()
    body["format"] = EXPORT_FORMAT
    body["suite"] = seal.SUITE_NAME
    body["record_aead"] = seal.RECORD_AEAD
    body["device_public_key"] = (
        journal.device_public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return sum(len(s["records"]) for s in body["segments"])


def read_export(path: Path, private_key: X25519PrivateKey) -> list[JournalEntry]:
    """Open an export with the guardian's key; check the chain links as it goes."""
    try:
        body: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: not readable JSON ({exc})") from exc
    if body.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: format {body.get('format')!r}, expected {EXPORT_FORMAT}")
    try:
        return _open_export(body, private_key, path)
    except (seal.SealError, ExportError):
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ExportError(f"{path}: malformed export ({type(exc).__name__}: {exc})") from exc


def _open_export(
    body: dict[str, Any], private_key: X25519PrivateKey, path: Path
) -> list[JournalEntry]:
    rid = seal.recipient_id(private_key.public_key())
    prev = bytes.fromhex(body["anchor"]["hash"])
    expected = int(body["anchor"]["seq"]) + 1
    out: list[JournalEntry] = []
    for seg in body["segments"]:
        uid = seg["uid"]
        wraps = [k for k in seg["keys"] if k["recipient"] == rid]
        aead = (
            AESGCM(seal.unwrap_key(bytes.fromhex(wraps[0]["wrapped"]), private_key, uid))
            if wraps
            else None
        )
        for rec in seg["records"]:
            seq = int(rec["seq"])
            nonce, ct = bytes.fromhex(rec["nonce"]), bytes.fromhex(rec["ciphertext"])
            if seq != expected or bytes.fromhex(rec["prev_hash"]) != prev:
                raise ExportError(f"{path}: record {expected} is missing or out of order")
            digest = chain_hash(prev, seq, uid, nonce, ct)
            if digest.hex() != rec["hash"]:
                raise ExportError(f"{path}: record {seq} was changed")
            prev, expected = digest, expected + 1
            if aead is not None:
                raw = seal.open_record(aead, uid, seq, nonce, ct)
                out.append(JournalEntry(seq, uid, decode_event(raw)))
    return out


def delete_everything(journal: Journal, ledger: Ledger | None, reason: str) -> DeletionReceipt:
    """Unpairing or a guardian's request: delete all journal data and purchases."""
    receipt = journal.delete_all(reason)
    if ledger is not None:
        ledger.delete_all()
    return receipt
