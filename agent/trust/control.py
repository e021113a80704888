"""The trust layer behind the Guardian1 D-Bus object (implements `agent.api.guardian_port`).

Takes the protocol's JSON texts, parses them with `protocol`, and turns every
`ProtocolError` into `InvalidArgumentError` naming the field, so root's calls get the same
clear refusals the sync client logs. Nothing here decides anything: `TrustLayer` does.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Protocol

from agent.api.guardian_port import DeliveryResult, TrustInfo
from agent.api.validate import InvalidArgumentError
from agent.trust.layer import TrustLayer
from protocol.encoding import loads
from protocol.errors import ProtocolError
from protocol.pairing import Complete, Response

MAX_JSON = 1_200_000


def _read(text: str, where: str) -> Any:
    try:
        return loads(text.encode(), where, MAX_JSON)
    except ProtocolError as exc:
        raise InvalidArgumentError(str(exc)) from exc


class PairingDriver(Protocol):
    """The dashboard's rendezvous, when the device syncs (`agent.sync.service.SyncService`)."""

    def start_pairing(self, *, again_when_expired: bool = False) -> None: ...

    def confirm_pairing(self, same: bool) -> None: ...

    def status(self) -> Any: ...


class TrustControl:
    def __init__(self, layer: TrustLayer, driver: PairingDriver | None = None) -> None:
        self.layer = layer
        self.driver = driver

    def trust_info(self) -> TrustInfo:
        s = self.layer.status()
        info = TrustInfo(s.paired, s.family, s.device_id, s.guardians, s.policy_version, s.policy_signer,
                         s.pairing, s.sas, s.outbox)
        if self.driver is None:
            return info
        sync = self.driver.status()
        ticket = sync.ticket
        return replace(info, dashboard=sync.origin, code=ticket.code if ticket else "",
                       qr_url=ticket.qr_url if ticket else "",
                       pairing_expires=ticket.expires_at if ticket else 0,
                       connected=sync.connected, last_contact=sync.last_contact or 0,
                       last_error=sync.last_error, pending_uploads=sync.pending_uploads)

    def start_pairing(self) -> str:
        if self.driver is None:
            raise InvalidArgumentError("this device has no dashboard configured (--dashboard)")
        try:
            self.driver.start_pairing()
        except ProtocolError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        return "starting"

    def confirm_pairing(self, same: bool) -> None:
        if self.driver is None:
            raise InvalidArgumentError("this device has no dashboard configured (--dashboard)")
        try:
            self.driver.confirm_pairing(same)
        except ProtocolError as exc:
            raise InvalidArgumentError(str(exc)) from exc

    def pairing_offer(self, session: str) -> str:
        try:
            return json.dumps(self.layer.pairing.begin(session).to_json())
        except ProtocolError as exc:
            raise InvalidArgumentError(str(exc)) from exc

    def pairing_respond(self, response_json: str) -> tuple[str, str]:
        try:
            reveal, sas = self.layer.pairing.respond(Response.from_json(_read(response_json, "response")))
        except ProtocolError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        return json.dumps(reveal.to_json()), sas

    def pairing_complete(self, complete_json: str, sas_confirmed: bool) -> str:
        try:
            done = self.layer.pairing.complete(Complete.from_json(_read(complete_json, "complete")),
                                               sas_confirmed=sas_confirmed)
        except ProtocolError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        applied = sum(1 for d in done.deliveries if d.result.value == "applied")
        return f"paired with {done.guardian} (family {done.family}); {applied} first messages applied"

    def pairing_abort(self) -> None:
        self.layer.pairing.abort()

    def deliver(self, message_id: str, sealed_json: str) -> DeliveryResult:
        got = self.layer.deliver(message_id, sealed_json.encode())
        return DeliveryResult(got.result.value, got.reason, got.ack.decode())

    def deliver_keyring(self, entries_json: str) -> str:
        try:
            ring = self.layer.deliver_keyring(_read(entries_json, "entries"))
        except ProtocolError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        return f"keyring at entry {ring.head_seq}: {len(ring.guardians)} guardians"
