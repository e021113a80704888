"""The one error type of the protocol package: what was wrong, and where.

Every reader in `protocol` raises `ProtocolError` for bad input, with `where` naming the
field (a dotted path such as ``body.payload.minutes``) so a refusal can be reported to the
guardian and journalled as it is. Nothing is ever half-applied: parsing happens before any
caller acts on a message.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Bad input: a malformed, mis-signed, mis-addressed, expired or replayed message."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


class SignatureError(ProtocolError):
    """The signature does not verify, or the signer is not allowed to sign this."""


class SealError(ProtocolError):
    """A sealed blob does not open with the key given (wrong key, context or tampered)."""
