"""`chain.find_damage`: where a journal's stored records stop matching their contents (a
bit flipped on the card), and the first signed checkpoint after it that still vouches for
the stored chain, from where an upload may go on. Pure: records and checkpoints are made
here with the protocol's own hash and a fresh device key."""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.store.chain import GENESIS, ChainRecord, Checkpoint, Damage, find_damage
from protocol.journal import chain_hash, checkpoint_message

KEY = Ed25519PrivateKey.generate()


def journal(n: int) -> list[ChainRecord]:
    records, prev = [], GENESIS
    for seq in range(1, n + 1):
        nonce, ct = bytes(12), f"record {seq}".encode()
        h = chain_hash(prev, seq, "seg", nonce, ct)
        records.append(ChainRecord(seq, "seg", nonce, ct, prev, h))
        prev = h
    return records


def checkpoint(records: list[ChainRecord], seq: int, key: Ed25519PrivateKey = KEY) -> Checkpoint:
    head = records[seq - 1].hash
    return Checkpoint(seq, head, 1_000_000 * seq, key.sign(checkpoint_message(seq, head, 1_000_000 * seq)))


def flipped(records: list[ChainRecord], seq: int) -> list[ChainRecord]:
    r = records[seq - 1]
    return [*records[:seq - 1], replace(r, ciphertext=bytes([r.ciphertext[0] ^ 1]) + r.ciphertext[1:]),
            *records[seq:]]


def test_an_intact_journal_has_no_damage() -> None:
    records = journal(6)
    assert find_damage(records, [checkpoint(records, 3), checkpoint(records, 6)], KEY.public_key()) is None


def test_damage_resumes_at_the_first_signed_checkpoint_at_or_after_it() -> None:
    records = journal(8)
    cps = [checkpoint(records, 2), checkpoint(records, 5), checkpoint(records, 8)]
    assert find_damage(flipped(records, 4), cps, KEY.public_key()) == Damage(4, cps[1])
    assert find_damage(flipped(records, 5), cps, KEY.public_key()) == Damage(5, cps[1])  # its own record
    assert find_damage(flipped(flipped(records, 3), 7), cps, KEY.public_key()) == Damage(3, cps[1])


def test_no_resume_without_a_checkpoint_after_the_damage_that_the_device_signed() -> None:
    records = journal(6)
    assert find_damage(flipped(records, 5), [checkpoint(records, 3)], KEY.public_key()) is None
    forged = checkpoint(records, 6, Ed25519PrivateKey.generate())
    assert find_damage(flipped(records, 5), [forged], KEY.public_key()) is None
    # a checkpoint naming a head the stored chain does not have vouches for nothing either
    other = replace(checkpoint(records, 6), head=records[4].hash)
    assert find_damage(flipped(records, 5), [other], KEY.public_key()) is None


def test_a_record_of_a_missing_segment_is_damage() -> None:
    records = journal(4)
    records[1] = replace(records[1], segment_uid=None, segment_id=9)
    assert find_damage(records, [checkpoint(records, 4)], KEY.public_key()) == Damage(2, checkpoint(records, 4))
