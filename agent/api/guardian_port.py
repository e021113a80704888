"""What the Guardian1 D-Bus object needs of the trust layer: the `GuardianPort` protocol.

Arguments and results are the protocol's JSON texts (PROTOCOL.md), so the D-Bus layer
never parses a signed message itself; the trust layer (`agent.trust.control`) does, and
raises `agent.api.validate.InvalidArgumentError` naming the field for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TrustInfo:
    paired: bool
    family: str
    device_id: str
    guardians: tuple[tuple[str, str], ...]  # (key id, label)
    policy_version: int
    policy_signer: str
    pairing: str  # idle | offered | revealed | paired
    sas: str
    outbox: int
    dashboard: str = ""  # the dashboard's origin ("" without sync)
    code: str = ""  # the pairing code to show while pairing through the dashboard
    qr_url: str = ""  # the QR code's link (PROTOCOL.md 7.3)
    pairing_expires: int = 0
    connected: bool = False
    last_contact: int = 0  # unix seconds, 0: never
    last_error: str = ""
    pending_uploads: int = 0


@dataclass(frozen=True)
class DeliveryResult:
    result: str  # applied | refused | duplicate
    reason: str
    ack: str  # the signed ack (JSON), "" when none could be signed


class GuardianPort(Protocol):
    def trust_info(self) -> TrustInfo: ...

    def pairing_offer(self, session: str) -> str:
        """Start pairing; the offer JSON (PROTOCOL.md §7.1)."""

    def pairing_respond(self, response_json: str) -> tuple[str, str]:
        """The guardian's response; (reveal JSON, the six-digit SAS)."""

    def pairing_complete(self, complete_json: str, sas_confirmed: bool) -> str:
        """Finish pairing; a message naming the guardian. Refusals raise."""

    def pairing_abort(self) -> None: ...

    def start_pairing(self) -> str:
        """Pair through the dashboard (the code and QR appear in `trust_info`)."""

    def confirm_pairing(self, same: bool) -> None:
        """The person at the tablet says whether both screens show the same SAS."""

    def deliver(self, message_id: str, sealed_json: str) -> DeliveryResult: ...

    def deliver_keyring(self, entries_json: str) -> str: ...
