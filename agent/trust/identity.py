"""The device's two keys as one protocol identity: the Ed25519 identity made at first boot
(it also signs journal checkpoints) and the X25519 key guardians seal rules to.

Both live root-only in the state directory; each is made once, atomically, the first time
it is needed (first boot makes them, so the fingerprint a factory records never changes).
"""

from __future__ import annotations

from pathlib import Path

from agent.store import seal
from agent.store.identity import ensure_device_key
from agent.store.layout import StoreLayout
from protocol.keys import Identity

SEAL_KEY = "device-seal.key"


def seal_key_path(state: Path) -> Path:
    return state / SEAL_KEY


def device_identity(state: Path, label: str = "") -> Identity:
    """Load (or make, once) the device's keys."""
    sign = ensure_device_key(StoreLayout(state).device_key)
    seal_key = seal.ensure_local_key(seal_key_path(state))
    return Identity(sign, seal_key, is_device=True, label=label)
