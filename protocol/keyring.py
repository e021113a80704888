"""The family keyring (PROTOCOL.md §4): a hash-chained list of signed entries that says which
guardians may sign rules and which devices belong to the family.

Values are immutable: `Keyring.extend(entry)` returns a new keyring or raises, so a bad
entry can never leave a half-applied state. Only a guardian already active may sign an
entry (the genesis is signed by the guardian it adds), which is why a server that stores
and relays the keyring still cannot add a key to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from protocol.encoding import Fields, dom, loads
from protocol.envelope import (
    MAX_LIFETIME,
    Body,
    Envelope,
    MessageType,
    Purpose,
    envelope_from_json,
    new_id,
    parse_body,
    sign,
    verify,
)
from protocol.errors import ProtocolError, SignatureError
from protocol.keys import Identity, PublicParty, party_from_json, party_to_json

GENESIS_PREV = "0" * 64
MAX_ENTRIES = 1_000


class Op(StrEnum):
    GENESIS = "genesis"
    ADD_GUARDIAN = "add_guardian"
    REMOVE_GUARDIAN = "remove_guardian"
    ADD_DEVICE = "add_device"
    REMOVE_DEVICE = "remove_device"


def entry_hash(entry: Envelope) -> str:
    return hashlib.sha256(dom("keyring-entry") + entry.body_bytes).hexdigest()


@dataclass(frozen=True)
class EntryChange:
    """What one entry's payload says (parsed, not yet judged against the chain)."""

    op: Op
    prev: str
    party: PublicParty | None  # genesis, add_*
    target: str | None  # remove_*


def parse_change(payload: Mapping[str, Any], where: str) -> EntryChange:
    f = Fields(payload, where)
    op = Op(f.choice("op", tuple(o.value for o in Op)))
    prev = f.hex_("prev", 32)
    party = target = None
    if op in (Op.GENESIS, Op.ADD_GUARDIAN):
        party = party_from_json(f.raw("guardian"), f.at("guardian"), "kid")
    elif op is Op.ADD_DEVICE:
        party = party_from_json(f.raw("device"), f.at("device"), "id")
    else:
        target = f.hex_("target")
    f.done()
    return EntryChange(op, prev, party, target)


def _frozen(d: dict[str, PublicParty]) -> Mapping[str, PublicParty]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Keyring:
    family: str
    guardians: Mapping[str, PublicParty]  # active, by key id
    devices: Mapping[str, PublicParty]  # active, by device id
    ever: frozenset[str]  # every id ever added (none may be added twice)
    head_seq: int
    head_hash: str
    entries: tuple[Envelope, ...] = field(repr=False)

    # -- reading --------------------------------------------------------------------

    @classmethod
    def from_entries(cls, entries: Iterable[Envelope], where: str = "keyring") -> Keyring:
        items = list(entries)
        if not items:
            raise ProtocolError(where, "a keyring has at least its genesis entry")
        if len(items) > MAX_ENTRIES:
            raise ProtocolError(where, f"{len(items)} entries, at most {MAX_ENTRIES}")
        ring = cls.genesis(items[0], f"{where}[0]")
        for i, entry in enumerate(items[1:], start=1):
            ring = ring.extend(entry, f"{where}[{i}]")
        return ring

    @classmethod
    def from_json(cls, value: object, where: str = "keyring") -> Keyring:
        if not isinstance(value, list):
            raise ProtocolError(where, "expected an array of entries")
        return cls.from_entries((envelope_from_json(v, f"{where}[{i}]") for i, v in enumerate(value)), where)

    @classmethod
    def loads(cls, data: bytes, where: str = "keyring") -> Keyring:
        return cls.from_json(loads(data, where, MAX_ENTRIES * 4096), where)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

    @classmethod
    def genesis(cls, entry: Envelope, where: str = "keyring[0]") -> Keyring:
        body, change = _read_entry(entry, where)
        if change.op is not Op.GENESIS or body.seq != 0 or change.prev != GENESIS_PREV:
            raise ProtocolError(where, "the first entry must be a genesis with seq 0 and a zero prev")
        assert change.party is not None
        if entry.kid != change.party.id:
            raise SignatureError(f"{where}.kid", "a genesis is signed by the guardian it adds")
        verify(entry, change.party.sign_key, Purpose.KEYRING, where)
        return cls(body.family, _frozen({change.party.id: change.party}), _frozen({}),
                   frozenset({change.party.id}), 0, entry_hash(entry), (entry,))

    def extend(self, entry: Envelope, where: str = "keyring entry") -> Keyring:
        """The keyring after `entry`, which must come next, from an active guardian."""
        signer = self.guardians.get(entry.kid)
        if signer is None:
            raise SignatureError(f"{where}.kid", f"{entry.kid} is not an active guardian of this family")
        body = verify(entry, signer.sign_key, Purpose.KEYRING, where)
        if body.type is not MessageType.KEYRING:
            raise ProtocolError(f"{where}.type", "not a keyring entry")
        change = parse_change(body.payload, f"{where}.payload")
        if body.family != self.family:
            raise ProtocolError(f"{where}.family",
                                f"{body.family} is not this keyring's family {self.family}")
        if body.seq != self.head_seq + 1:
            raise ProtocolError(f"{where}.seq", f"{body.seq} does not follow the head {self.head_seq}")
        if change.prev != self.head_hash:
            raise ProtocolError(f"{where}.payload.prev", "does not name the head entry (a fork)")
        guardians, devices, ever = dict(self.guardians), dict(self.devices), set(self.ever)
        if change.op is Op.GENESIS:
            raise ProtocolError(f"{where}.payload.op", "a keyring has one genesis")
        if change.party is not None:
            if change.party.id in ever:
                raise ProtocolError(f"{where}.payload", f"{change.party.id} was added before")
            ever.add(change.party.id)
            (guardians if change.op is Op.ADD_GUARDIAN else devices)[change.party.id] = change.party
        else:
            pool = guardians if change.op is Op.REMOVE_GUARDIAN else devices
            if change.target not in pool:
                raise ProtocolError(f"{where}.payload.target", f"{change.target} is not active")
            if change.op is Op.REMOVE_GUARDIAN and len(guardians) == 1:
                raise ProtocolError(f"{where}.payload.target", "the last guardian cannot be removed")
            del pool[change.target]
        return Keyring(self.family, _frozen(guardians), _frozen(devices), frozenset(ever),
                       body.seq, entry_hash(entry), (*self.entries, entry))

    def extend_all(self, entries: Iterable[Envelope], where: str = "keyring") -> Keyring:
        """Skip entries this keyring already holds (same hash at the same seq), extend with
        the rest; an entry that disagrees with one held is a fork and is refused."""
        ring = self
        for i, entry in enumerate(entries):
            body = parse_body(entry.body_bytes, f"{where}[{i}].body")
            if body.seq <= ring.head_seq:
                if entry_hash(entry) != entry_hash(ring.entries[body.seq]):
                    raise ProtocolError(f"{where}[{i}]",
                                        f"entry {body.seq} differs from the one held (a fork)")
                continue
            ring = ring.extend(entry, f"{where}[{i}]")
        return ring

    def contains_head(self, head_hash: str) -> bool:
        return any(entry_hash(e) == head_hash for e in self.entries)

    @property
    def seal_keys(self) -> list[PublicParty]:
        """Every active guardian: what the child's data is sealed to."""
        return [self.guardians[k] for k in sorted(self.guardians)]

    # -- writing (guardian side) ---------------------------------------------------------

    def entry(self, signer: Identity, op: Op, *, party: PublicParty | None = None,
              target: str | None = None, now: int, message_id: str | None = None) -> Envelope:
        """The next entry, signed by `signer` (checked by `extend` like any other)."""
        return _make_entry(self.family, self.head_seq + 1, self.head_hash, signer, op, party, target, now,
                           message_id)


def _read_entry(entry: Envelope, where: str) -> tuple[Body, EntryChange]:
    body = parse_body(entry.body_bytes, f"{where}.body")
    if body.type is not MessageType.KEYRING:
        raise ProtocolError(f"{where}.body.type", "not a keyring entry")
    return body, parse_change(body.payload, f"{where}.body.payload")


def _make_entry(family: str, seq: int, prev: str, signer: Identity, op: Op,
                party: PublicParty | None, target: str | None, now: int,
                message_id: str | None = None) -> Envelope:
    payload: dict[str, Any] = {"op": op.value, "prev": prev}
    if op in (Op.GENESIS, Op.ADD_GUARDIAN):
        assert party is not None
        payload["guardian"] = party_to_json(party, "kid")
    elif op is Op.ADD_DEVICE:
        assert party is not None
        payload["device"] = party_to_json(party, "id")
    else:
        assert target is not None
        payload["target"] = target
    body = Body(MessageType.KEYRING, family, "", message_id or new_id(), seq, now,
                now + MAX_LIFETIME[MessageType.KEYRING], signer.id, payload)
    return sign(body, signer.sign_key)


def make_genesis(guardian: Identity, family: str, now: int, message_id: str | None = None) -> Envelope:
    return _make_entry(family, 0, GENESIS_PREV, guardian, Op.GENESIS, guardian.public, None, now, message_id)
