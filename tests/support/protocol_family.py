"""A family with one guardian and one paired device, for protocol-level tests."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.accept import ReplayState
from protocol.guardian import ReferenceGuardian
from protocol.keyring import Keyring, Op, make_genesis
from protocol.keys import Identity

NOW = 1_796_000_000


@dataclass
class Family:
    guardian: ReferenceGuardian
    device: Identity
    keyring: Keyring
    state: ReplayState


def make_family() -> Family:
    g = ReferenceGuardian(Identity.generate(is_device=False, label="Mum"))
    device = Identity.generate(is_device=True, label="tablet")
    ring = Keyring.from_entries([make_genesis(g.identity, "ab" * 16, NOW)])
    ring = ring.extend(ring.entry(g.identity, Op.ADD_DEVICE, party=device.public, now=NOW))
    g.keyring = ring
    return Family(g, device, ring, ReplayState())
