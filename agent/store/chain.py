"""The journal's tamper evidence as pure functions over plain values.

The record hash and the signed messages (checkpoint, purge anchor, deletion receipt) are
`protocol.journal`'s, the one definition the dashboard checks uploads with; here are the
values the journal stores and `verify`, shared by the journal on the device (`Journal.verify`)
and by whoever reads an export (`datarights.read_export`): both must reach the same
verdict from the same bytes, so neither has a copy of its own. Nothing here touches a
database, a file or a clock.

    hash(record) = SHA-256(prev hash || seq (8 bytes, big-endian) || segment uid
                           || nonce || ciphertext), chained across segments from `GENESIS`
                           or from the signed anchor a purge left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.journal import (  # the formats' one definition, shared with the dashboard
    GENESIS_HASH,
    anchor_message,
    chain_hash,
    chain_hashes,
    checkpoint_message,
    deletion_message,
)

GENESIS = GENESIS_HASH
__all__ = ["GENESIS", "Anchor", "ChainRecord", "Checkpoint", "Damage", "VerifyReport", "anchor_message",
           "chain_hash", "chain_hashes", "checkpoint_message", "deletion_message", "find_damage", "verify"]


@dataclass(frozen=True)
class Anchor:
    """Where the surviving chain starts: the last purged record's seq and hash (0 and
    `GENESIS` before any purge, when no signature is needed)."""

    seq: int
    hash: bytes
    signature: bytes = b""


NO_ANCHOR = Anchor(0, GENESIS)


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # the chain head's seq
    head: bytes  # its hash
    at: int  # UTC microseconds
    signature: bytes


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """One record as stored: still sealed. `segment_uid` is None when the record names a
    segment that does not exist (`segment_id`, the store's row id, then names it)."""

    seq: int
    segment_uid: str | None
    nonce: bytes
    ciphertext: bytes
    prev_hash: bytes
    hash: bytes
    segment_id: int | None = None


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


def _signed(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def verify(
    anchor: Anchor,
    records: Iterable[ChainRecord],
    checkpoints: Iterable[Checkpoint],
    public_key: Ed25519PublicKey,
) -> VerifyReport:
    """Check the anchor's signature, the chain of `records` (in the order given, which
    must be seq order from `anchor.seq + 1`) and every checkpoint (in seq order) against
    the device's key; name the first bad record.

    Found: an edit (hash mismatch), a delete (missing seq), a reorder (prev-hash
    mismatch), a truncation (a signed checkpoint beyond the last record), a rewrite with
    re-computed hashes (the chain disagrees with a signed checkpoint), records no
    checkpoint covers, and bad signatures."""
    base_seq, base_hash = anchor.seq, anchor.hash
    problems: list[tuple[int, str]] = []
    if base_seq > 0 and not _signed(public_key, anchor.signature, anchor_message(base_seq, base_hash)):
        problems.append((base_seq + 1, "the chain's start (purge anchor) is not signed"))
    hashes: dict[int, bytes] = {base_seq: base_hash}
    expected, prev, checked = base_seq + 1, base_hash, 0
    for rec in records:
        checked += 1
        seq = rec.seq
        if seq != expected:
            problems.append((expected, f"missing (the next record present is {seq})"))
            break
        if rec.segment_uid is None:
            problems.append((seq, f"belongs to segment {rec.segment_id}, which does not exist"))
            break
        if rec.prev_hash != prev:
            problems.append((seq, f"does not follow record {seq - 1} (reordered or replaced)"))
            break
        if chain_hash(prev, seq, rec.segment_uid, rec.nonce, rec.ciphertext) != rec.hash:
            problems.append((seq, "contents changed (hash mismatch)"))
            break
        hashes[seq] = rec.hash
        prev = rec.hash
        expected += 1
    head = expected - 1
    last_good = _check_checkpoints(checkpoints, public_key, base_seq, head, hashes, problems)
    if head > last_good and not problems:
        problems.append((last_good + 1, f"records after {last_good} have no checkpoint"))
    if problems:
        first, problem = min(problems)
        return VerifyReport(False, checked, first, problem)
    return VerifyReport(True, checked)


def _check_checkpoints(
    checkpoints: Iterable[Checkpoint],
    public_key: Ed25519PublicKey,
    base_seq: int,
    head: int,
    hashes: dict[int, bytes],
    problems: list[tuple[int, str]],
) -> int:
    """Append what is wrong with the checkpoints to `problems`; return the seq of the
    last checkpoint that agrees with the chain (the anchor's when none does)."""
    last_good = base_seq
    for cp in checkpoints:
        if not _signed(public_key, cp.signature, checkpoint_message(cp.seq, cp.head, cp.at)):
            problems.append((cp.seq, f"checkpoint at record {cp.seq} has a bad signature"))
            break
        if cp.seq < base_seq:
            continue
        if cp.seq > head and not problems:
            problems.append(
                (head + 1, f"missing: truncated after record {head}, "
                 f"but a signed checkpoint covers {cp.seq}")
            )
            break
        if cp.seq in hashes and hashes[cp.seq] != cp.head:
            problems.append(
                (last_good + 1, f"records {last_good + 1}..{cp.seq} were rewritten "
                 "(chain disagrees with a signed checkpoint)")
            )
            break
        last_good = cp.seq
    return last_good


@dataclass(frozen=True)
class Damage:
    """A stretch of records whose contents no longer match their stored hashes (a bit
    flipped on the card): the first such record, and the first signed checkpoint at or
    after it that still vouches for the stored chain, from where the chain can go on."""

    first: int
    resume: Checkpoint


def find_damage(records: Iterable[ChainRecord], checkpoints: Iterable[Checkpoint],
                public_key: Ed25519PublicKey) -> Damage | None:
    """The first damaged record in `records` (seq order) and where the chain resumes; None
    when every record matches its stored hash, or no signed checkpoint after the damage
    agrees with the stored hashes (nothing to resume from: the upload waits instead).
    Only contents are judged: a record whose stored hashes were rewritten is `verify`'s."""
    first: int | None = None
    stored: dict[int, bytes] = {}
    for rec in records:
        intact = rec.segment_uid is not None and chain_hash(
            rec.prev_hash, rec.seq, rec.segment_uid, rec.nonce, rec.ciphertext) == rec.hash
        if first is None and not intact:
            first = rec.seq
        if first is not None:
            stored[rec.seq] = rec.hash
    if first is None:
        return None
    for cp in checkpoints:
        if cp.seq >= first and stored.get(cp.seq) == cp.head and _signed(
                public_key, cp.signature, checkpoint_message(cp.seq, cp.head, cp.at)):
            return Damage(first, cp)
    return None
