"""Making messages: sign a payload value into an envelope, and seal it to its readers.

Both sides use these (the device for acknowledgements, requests and summaries; the
reference guardian client and the tests for policies and decisions), so the layout of a
body is written once. The web app does the same in its own crypto module.
"""

from __future__ import annotations

from protocol.envelope import MAX_LIFETIME, Body, Envelope, MessageType, new_id, sign
from protocol.errors import ProtocolError
from protocol.keyring import Keyring
from protocol.keys import Identity
from protocol.messages import Payload, payload_json
from protocol.sealing import Sealed, guardian_message_ctx, seal


def compose(signer: Identity, family: str, device: str, value: Payload, now: int, *, seq: int = 0,
            lifetime: int | None = None, message_id: str | None = None) -> Envelope:
    """Sign `value` as a message of `family` for (or from) `device`, issued at `now`."""
    kind, payload = payload_json(value)
    life = MAX_LIFETIME[kind] if lifetime is None else lifetime
    kid = signer.id
    body = Body(kind, family, device, message_id or new_id(), seq, now, now + life, kid, payload)
    return sign(body, signer.sign_key)


def seal_to_device(envelope: Envelope, message_id: str, keyring: Keyring, device: str) -> Sealed:
    """A guardian message sealed to its device and to every active guardian (PROTOCOL.md §5)."""
    target = keyring.devices.get(device)
    if target is None:
        raise ProtocolError("device", f"{device} is not an active device of family {keyring.family}")
    readers = [target.seal_key] + [g.seal_key for g in keyring.seal_keys]
    return seal(envelope.encode(), guardian_message_ctx(keyring.family, device, message_id), readers)


def seal_to_guardians(envelope: Envelope, ctx: str, keyring: Keyring) -> Sealed:
    """A device message sealed to every active guardian (requests, summaries, catalogue)."""
    return seal(envelope.encode(), ctx, [g.seal_key for g in keyring.seal_keys])


__all__ = ["MessageType", "compose", "seal_to_device", "seal_to_guardians"]
