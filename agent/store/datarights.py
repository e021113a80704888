"""The guardian's rights over the child's data on the device: see, copy, delete (Reg. 34,
Prov. 19-20).

What the device can tell without the guardian's key is deliberately little: per segment,
when it was opened and closed, how many records it holds and to whom it is sealed, and
how many purchases the ledger holds. Event kinds stay inside the sealed records, never in
clear metadata: even a count of "report" or "dns_blocked" events says something about
the child. With the guardian's key, `kinds` opens the records and counts them by kind.

Export writes the sealed segments as they are (plus the signed checkpoints and anchor) to
one JSON file the guardian can take; `read_export` checks it exactly as the device checks
its journal (`agent.store.chain.verify`: chain, anchor and checkpoint signatures) and
opens it with the guardian's key. Deletion removes every segment and purchase and keeps a signed receipt,
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.store import chain, seal
from agent.store.chain import Anchor, ChainRecord, Checkpoint
from agent.store.journal import Journal, JournalEntry, decode_event
from agent.store.ledger import Ledger
from agent.store.retention import DeletionReceipt
from agent.store.segments import SegmentInfo

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
    body["device_public_key"] = _raw(journal.device_public_key()).hex()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return sum(len(s["records"]) for s in body["segments"])


def read_export(
    path: Path, private_key: X25519PrivateKey, device_public_key: Ed25519PublicKey | None = None
) -> list[JournalEntry]:
    """Open an export with the guardian's key after checking it as the device checks its
    journal (`chain.verify`): the chain, the anchor's and every checkpoint's signature.

    `device_public_key` is the device key the guardian learnt at pairing; without it the
    export's own key is used, which proves the export consistent, not who made it."""
    try:
        body: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: not readable JSON ({exc})") from exc
    if body.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: format {body.get('format')!r}, expected {EXPORT_FORMAT}")
    try:
        return _open_export(body, private_key, device_public_key, path)
    except (seal.SealError, ExportError):
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ExportError(f"{path}: malformed export ({type(exc).__name__}: {exc})") from exc


def _open_export(
    body: dict[str, Any],
    private_key: X25519PrivateKey,
    device_public_key: Ed25519PublicKey | None,
    path: Path,
) -> list[JournalEntry]:
    exported_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(body["device_public_key"]))
    if device_public_key is not None and _raw(device_public_key) != _raw(exported_key):
        raise ExportError(f"{path}: made by another device key than the one paired")
    anchor = Anchor(
        int(body["anchor"]["seq"]),
        bytes.fromhex(body["anchor"]["hash"]),
        bytes.fromhex(body["anchor"]["signature"]),
    )
    records = [
        ChainRecord(
            int(rec["seq"]),
            str(seg["uid"]),
            bytes.fromhex(rec["nonce"]),
            bytes.fromhex(rec["ciphertext"]),
            bytes.fromhex(rec["prev_hash"]),
            bytes.fromhex(rec["hash"]),
        )
        for seg in body["segments"]
        for rec in seg["records"]
    ]
    checkpoints = [
        Checkpoint(int(cp["seq"]), bytes.fromhex(cp["head"]), int(cp["at"]),
                   bytes.fromhex(cp["signature"]))
        for cp in body["checkpoints"]
    ]
    report = chain.verify(anchor, records, checkpoints, device_public_key or exported_key)
    if not report.ok:
        raise ExportError(f"{path}: record {report.first_bad}: {report.problem}")
    rid = seal.recipient_id(private_key.public_key())
    opened: dict[str, AESGCM] = {}
    for seg in body["segments"]:
        wraps = [k for k in seg["keys"] if k["recipient"] == rid]
        if wraps:
            uid = str(seg["uid"])
            opened[uid] = AESGCM(seal.unwrap_key(bytes.fromhex(wraps[0]["wrapped"]), private_key, uid))
    out: list[JournalEntry] = []
    for rec in records:
        assert rec.segment_uid is not None  # every exported record sits in its segment
        aead = opened.get(rec.segment_uid)
        if aead is not None:
            raw = seal.open_record(aead, rec.segment_uid, rec.seq, rec.nonce, rec.ciphertext)
            out.append(JournalEntry(rec.seq, rec.segment_uid, decode_event(raw)))
    return out


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def delete_everything(journal: Journal, ledger: Ledger | None, reason: str) -> DeletionReceipt:
    """Unpairing or a guardian's request: delete all journal data and purchases."""
    receipt = journal.delete_all(reason)
    if ledger is not None:
        ledger.delete_all()
    return receipt
