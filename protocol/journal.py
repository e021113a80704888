"""The journal on the wire (PROTOCOL.md §11): the chain hash, the signed checkpoint,
purge-anchor and deletion messages, and a pure checker for an uploaded range of records.

The one definition of these formats in the project: the device's journal
(`agent/store/journal.py`) appends through `chain_hashes` and signs the messages built
here; the dashboard checks every upload with `check_range` before it stores a record, and
the guardian's app can check what it downloads the same way. Everything checked is public
(hashes, nonces, ciphertexts and the device's signatures), so the server verifies without
reading anything: a corrupt upload is refused with the first bad seq, and no one but the
device can extend its chain.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.errors import ProtocolError

GENESIS_HASH = bytes(32)
CHECKPOINT_TAG = b"minormode/journal/checkpoint/v1"
ANCHOR_TAG = b"minormode/journal/anchor/v1"
DELETION_TAG = b"minormode/journal/deletion/v1"
# One journal upload's bounds (the dashboard refuses more; the device splits its uploads to
# fit): a long-offline device that rebooted often holds far more segments than one upload.
MAX_UPLOAD_RECORDS = 2_000
MAX_UPLOAD_SEGMENTS = 64


def chain_hashes(
    prev: bytes, first_seq: int, segment_uid: str, sealed: Iterable[tuple[bytes, bytes]]
) -> list[bytes]:
    """The hashes of consecutive records of one segment, `(nonce, ciphertext)` each, the
    first with seq `first_seq` following a record whose hash is `prev`. The formula's one
    definition in the project (the agent's journal appends with it, the server checks
    uploads with it): a batch, so an append of many records pays one call."""
    uid = segment_uid.encode("ascii")
    sha256 = hashlib.sha256
    out: list[bytes] = []
    seq = first_seq
    for nonce, ciphertext in sealed:
        prev = sha256(b"".join((prev, seq.to_bytes(8, "big"), uid, nonce, ciphertext))).digest()
        out.append(prev)
        seq += 1
    return out


def chain_hash(prev: bytes, seq: int, segment_uid: str, nonce: bytes, ciphertext: bytes) -> bytes:
    """H(prev_hash || u64(seq) || segment uid (ASCII) || nonce || ciphertext)."""
    return chain_hashes(prev, seq, segment_uid, ((nonce, ciphertext),))[0]


def checkpoint_message(seq: int, head: bytes, at: int) -> bytes:
    """What a checkpoint signature covers: tag || u64(seq) || i64(at, microseconds) || head."""
    return CHECKPOINT_TAG + struct.pack(">Qq", seq, at) + head


def anchor_message(seq: int, head: bytes) -> bytes:
    """What the device signs when a purge moves the chain's start to (seq, head)."""
    return ANCHOR_TAG + struct.pack(">Q", seq) + head


def deletion_message(at: int, reason: str, segments: int, records: int, up_to_seq: int) -> bytes:
    """What the device signs for a deletion receipt: tag || i64(at) || u64 x3 || reason."""
    return DELETION_TAG + struct.pack(">qQQQ", at, segments, records, up_to_seq) + reason.encode()


@dataclass(frozen=True)
class WireRecord:
    seq: int
    segment: str  # segment uid
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: bytes
    at: int
    signature: bytes


@dataclass(frozen=True)
class Anchor:
    seq: int
    head: bytes
    signature: bytes


class ChainError(ProtocolError):
    """An upload that does not extend the chain; `seq` is the first bad record."""

    def __init__(self, seq: int, where: str, problem: str) -> None:
        super().__init__(where, f"record {seq}: {problem}")
        self.seq = seq


def verify_anchor(anchor: Anchor, device_key: Ed25519PublicKey, where: str = "anchor") -> None:
    try:
        device_key.verify(anchor.signature, anchor_message(anchor.seq, anchor.head))
    except InvalidSignature as exc:
        raise ChainError(
            anchor.seq + 1, f"{where}.signature", "the purge anchor is not signed by the device"
        ) from exc


@dataclass(frozen=True)
class RangeResult:
    hashes: tuple[bytes, ...]  # the chain hash of each record, in order
    verified: int  # the highest seq a valid checkpoint covers (the base seq if none)


def check_range(
    base_seq: int,
    base_hash: bytes,
    records: Sequence[WireRecord],
    checkpoints: Sequence[Checkpoint],
    device_key: Ed25519PublicKey,
    where: str = "records",
    checkpoints_where: str = "checkpoints",
) -> RangeResult:
    """Check that `records` extend the chain whose head is (`base_seq`, `base_hash`) and
    that every checkpoint in the range is the device's signature over the head it names.
    Returns the chain hashes and how far a checkpoint vouches for them."""
    hashes: list[bytes] = []
    prev, expected = base_hash, base_seq + 1
    for i, record in enumerate(records):
        if record.seq != expected:
            raise ChainError(expected, f"{where}[{i}].seq", f"expected {expected}, got {record.seq}")
        prev = chain_hash(prev, record.seq, record.segment, record.nonce, record.ciphertext)
        hashes.append(prev)
        expected += 1
    head = expected - 1
    verified = base_seq
    last_good = base_seq
    previous = -1
    for i, cp in enumerate(checkpoints):
        at = f"{checkpoints_where}[{i}]"
        if cp.seq <= previous:
            raise ChainError(last_good + 1, f"{at}.seq", "checkpoints must be in ascending order of seq")
        previous = cp.seq
        if cp.seq <= base_seq:
            continue
        if cp.seq > head:
            raise ChainError(
                head + 1,
                f"{at}.seq",
                f"a checkpoint covers {cp.seq} but the records end at {head}",
            )
        try:
            device_key.verify(cp.signature, checkpoint_message(cp.seq, cp.head, cp.at))
        except InvalidSignature as exc:
            raise ChainError(
                last_good + 1,
                f"{at}.signature",
                f"the checkpoint at {cp.seq} is not signed by the device",
            ) from exc
        if hashes[cp.seq - base_seq - 1] != cp.head:
            raise ChainError(
                last_good + 1,
                f"{at}.head",
                f"records {last_good + 1}..{cp.seq} disagree with the signed checkpoint",
            )
        verified = last_good = cp.seq
    return RangeResult(tuple(hashes), verified)
