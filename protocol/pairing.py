"""Pairing (PROTOCOL.md §7) as two pure state machines, one per side, and the values they
exchange through whatever relays them (the dashboard's rendezvous, or a test's queue).

    device                           relay                      guardian
    DevicePairing.offer()      -> offer {device_id, commitment}  -> GuardianPairing(offer)
                               <- response {guardian, nonce, family, mac} <- .response()
    .on_response(r) -> reveal  -> reveal {device, nonce}        -> .on_reveal(r) -> SAS
    (both screens show the SAS; people compare)
                               <- complete {entries, messages}  <- .complete(...)
    .on_complete(c, confirmed) -> PairingResult (the device stores it, then says "paired")

The device commits to its nonce before it sees the guardian's, and the guardian sends its
nonce before it sees the device's, so a relay that swaps keys cannot make the two SAS agree
but by a one-in-a-million chance. The QR path replaces the comparison: the QR carries the
device id (a hash of its keys) and a fresh secret the guardian MACs its keys with.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from protocol.encoding import Fields, b64, dom, unb64, unhex
from protocol.envelope import Envelope, envelope_from_json, parse_body
from protocol.errors import ProtocolError
from protocol.keyring import Keyring, Op, entry_hash, make_genesis
from protocol.keys import Identity, PublicParty, party_from_json, party_to_json
from protocol.sealing import Sealed, sealed_from_json

NONCE_BYTES = 32
QR_SECRET_BYTES = 16
SAS_DIGITS = 6
CODE_DIGITS = 8
MAX_COMPLETE_MESSAGES = 16


def commitment(device: PublicParty, nonce: bytes) -> str:
    return hashlib.sha256(dom("pair-commit") + device.sign + device.seal + nonce).hexdigest()


def sas(commit: str, device: PublicParty, device_nonce: bytes, guardian: PublicParty,
        guardian_nonce: bytes) -> str:
    """Six digits both screens show (PROTOCOL.md §7.2)."""
    t = hashlib.sha256(dom("pair-sas") + bytes.fromhex(commit) + device.sign + device.seal + device_nonce
                       + guardian.sign + guardian.seal + guardian_nonce).digest()
    return str(int.from_bytes(t[:5], "big") % 10**SAS_DIGITS).zfill(SAS_DIGITS)


def qr_mac(secret: bytes, commit: str, guardian: PublicParty, guardian_nonce: bytes) -> bytes:
    return hmac.new(secret, dom("pair-qr") + bytes.fromhex(commit) + guardian.sign + guardian.seal
                    + guardian_nonce, hashlib.sha256).digest()


def format_sas(value: str) -> str:
    return f"{value[:3]} {value[3:]}"


def format_code(code: str) -> str:
    return f"{code[:4]} {code[4:]}"


@dataclass(frozen=True)
class QrPayload:
    """What the device's QR code carries, as the fragment of a dashboard URL."""

    code: str
    device_id: str
    secret: bytes

    def url(self, dashboard: str) -> str:
        fragment = urlencode({"v": "1", "c": self.code, "d": self.device_id, "s": b64(self.secret)})
        return f"{dashboard.rstrip('/')}/pair#{fragment}"

    @classmethod
    def from_url(cls, url: str) -> QrPayload:
        try:
            pairs = parse_qsl(urlsplit(url).fragment, strict_parsing=True)
        except ValueError as exc:
            raise ProtocolError("qr", f"not a pairing link ({exc})") from exc
        fields = dict(pairs)
        if len(pairs) != len(fields) or fields.get("v") != "1" or set(fields) != {"v", "c", "d", "s"}:
            raise ProtocolError("qr", "not a minormode v1 pairing link")
        code = fields["c"]
        if len(code) != CODE_DIGITS or not code.isdigit():
            raise ProtocolError("qr.c", f"a pairing code is {CODE_DIGITS} digits")
        unhex(fields["d"], "qr.d", 16)
        return cls(code, fields["d"], unb64(fields["s"], "qr.s", QR_SECRET_BYTES))


# ---------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Offer:
    device_id: str
    commitment: str

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "commitment": self.commitment}

    @classmethod
    def from_json(cls, value: object, where: str = "offer") -> Offer:
        f = Fields(value, where)
        offer = cls(f.hex_("device_id"), f.hex_("commitment", 32))
        f.done()
        return offer


@dataclass(frozen=True)
class Response:
    guardian: PublicParty
    nonce: bytes
    family: str | None
    mac: bytes | None

    def to_json(self) -> dict[str, Any]:
        return {"guardian": party_to_json(self.guardian, "kid"), "nonce": b64(self.nonce),
                "family": self.family, "mac": None if self.mac is None else b64(self.mac)}

    @classmethod
    def from_json(cls, value: object, where: str = "response") -> Response:
        f = Fields(value, where)
        guardian = party_from_json(f.raw("guardian"), f.at("guardian"), "kid")
        nonce = f.bytes_("nonce", size=NONCE_BYTES)
        family = f.hexid("family", optional=True)
        mac = None if f.raw("mac") is None else f.bytes_("mac", size=32)
        f.done()
        return cls(guardian, nonce, family, mac)


@dataclass(frozen=True)
class Reveal:
    device: PublicParty
    nonce: bytes

    def to_json(self) -> dict[str, Any]:
        return {"device": party_to_json(self.device, "id"), "nonce": b64(self.nonce)}

    @classmethod
    def from_json(cls, value: object, where: str = "reveal") -> Reveal:
        f = Fields(value, where)
        reveal = cls(party_from_json(f.raw("device"), f.at("device"), "id"),
                     f.bytes_("nonce", size=NONCE_BYTES))
        f.done()
        return reveal


@dataclass(frozen=True)
class Complete:
    entries: tuple[Envelope, ...]
    messages: tuple[tuple[str, Sealed], ...]  # (message id, sealed guardian message)

    def to_json(self) -> dict[str, Any]:
        return {"entries": [e.to_json() for e in self.entries],
                "messages": [{"id": i, "sealed": s.to_json()} for i, s in self.messages]}

    @classmethod
    def from_json(cls, value: object, where: str = "complete") -> Complete:
        f = Fields(value, where)
        entries = tuple(envelope_from_json(e, f"{f.at('entries')}[{i}]")
                        for i, e in enumerate(f.array("entries", max_items=1000)))
        messages = []
        for i, m in enumerate(f.array("messages", max_items=MAX_COMPLETE_MESSAGES)):
            mf = Fields(m, f"{f.at('messages')}[{i}]")
            messages.append((mf.hex_("id"), sealed_from_json(mf.raw("sealed"), mf.at("sealed"))))
            mf.done()
        f.done()
        return cls(entries, tuple(messages))


class PairingState(StrEnum):
    OFFERED = "offered"
    REVEALED = "revealed"
    DONE = "done"
    ABORTED = "aborted"


class PairingError(ProtocolError):
    """The pairing cannot finish (a wrong MAC, no SAS confirmation, a keyring that does not
    name the guardian who answered); nothing of it is kept."""


@dataclass(frozen=True)
class PairingResult:
    keyring: Keyring
    guardian: PublicParty
    messages: tuple[tuple[str, Sealed], ...]  # to open and accept with `keyring`
    by_qr: bool


# ---------------------------------------------------------------------- the device's side


class DevicePairing:
    """One pairing attempt on the device; single use."""

    def __init__(self, device: Identity, *, qr_secret: bytes | None = None) -> None:
        self.device = device
        self.nonce = os.urandom(NONCE_BYTES)
        self.qr_secret = qr_secret if qr_secret is not None else os.urandom(QR_SECRET_BYTES)
        self.commitment = commitment(device.public, self.nonce)
        self.state = PairingState.OFFERED
        self.response: Response | None = None
        self.by_qr = False
        self.sas: str | None = None

    def offer(self) -> Offer:
        return Offer(self.device.id, self.commitment)

    def qr(self, code: str) -> QrPayload:
        return QrPayload(code, self.device.id, self.qr_secret)

    def on_response(self, response: Response) -> Reveal:
        if self.state is not PairingState.OFFERED:
            raise PairingError("response", f"unexpected in state {self.state.value}")
        if response.mac is not None:
            want = qr_mac(self.qr_secret, self.commitment, response.guardian, response.nonce)
            if not hmac.compare_digest(want, response.mac):
                self.state = PairingState.ABORTED
                raise PairingError("response.mac", "does not match this device's QR code (keys swapped?)")
            self.by_qr = True
        self.response = response
        self.sas = sas(self.commitment, self.device.public, self.nonce, response.guardian, response.nonce)
        self.state = PairingState.REVEALED
        return Reveal(self.device.public, self.nonce)

    def on_complete(self, complete: Complete, *, sas_confirmed: bool) -> PairingResult:
        """Check `complete` against what this device saw; `sas_confirmed` is the person's
        answer on the tablet (not needed when the QR MAC verified)."""
        if self.state is not PairingState.REVEALED or self.response is None:
            raise PairingError("complete", f"unexpected in state {self.state.value}")
        try:
            if not (self.by_qr or sas_confirmed):
                raise PairingError("sas", "the codes on the two screens were not confirmed to match")
            guardian = self.response.guardian
            ring = Keyring.from_entries(complete.entries, "complete.entries")
            if self.response.family is not None and ring.family != self.response.family:
                raise PairingError("complete.entries", "not the family the guardian named")
            if self.response.family is None and len(complete.entries) != 2:
                raise PairingError("complete.entries", "a new family is a genesis and this device")
            if self.response.family is None and guardian.id not in ring.guardians:
                raise PairingError("complete.entries[0]",
                                   "the genesis does not add the guardian who answered")
            last = ring.entries[-1]
            if last.kid != guardian.id:
                raise PairingError("complete.entries",
                                   "this device was not added by the guardian who answered")
            added = ring.devices.get(self.device.id)
            if added is None or not added.same_keys(self.device.public) or \
                    _last_op(ring) is not Op.ADD_DEVICE:
                raise PairingError("complete.entries", "the last entry does not add exactly this device")
            if not guardian.same_keys(ring.guardians[guardian.id]):
                raise PairingError("complete.entries", "the keyring names other keys for the guardian")
        except ProtocolError as exc:
            self.state = PairingState.ABORTED
            if isinstance(exc, PairingError):
                raise
            raise PairingError(exc.where, exc.problem) from exc
        self.state = PairingState.DONE
        return PairingResult(ring, guardian, complete.messages, self.by_qr)

    def abort(self) -> None:
        self.state = PairingState.ABORTED


def _last_op(ring: Keyring) -> Op:
    return Op(parse_body(ring.entries[-1].body_bytes).payload["op"])


# ---------------------------------------------------------------------- the guardian's side


class GuardianPairing:
    """One pairing attempt in the guardian's app (here: the reference client and tests)."""

    def __init__(self, guardian: Identity, offer: Offer, *, keyring: Keyring | None = None,
                 qr: QrPayload | None = None) -> None:
        if qr is not None and qr.device_id != offer.device_id:
            raise PairingError("offer.device_id", "not the device of the scanned QR code")
        self.guardian = guardian
        self.offer = offer
        self.keyring = keyring
        self.qr = qr
        self.nonce = os.urandom(NONCE_BYTES)
        self.device: PublicParty | None = None
        self.sas: str | None = None

    def response(self) -> Response:
        mac = None if self.qr is None else qr_mac(self.qr.secret, self.offer.commitment,
                                                  self.guardian.public, self.nonce)
        family = None if self.keyring is None else self.keyring.family
        return Response(self.guardian.public, self.nonce, family, mac)

    def on_reveal(self, reveal: Reveal) -> str:
        if commitment(reveal.device, reveal.nonce) != self.offer.commitment:
            raise PairingError("reveal", "the device's keys or nonce do not match its commitment")
        if reveal.device.id != self.offer.device_id:
            raise PairingError("reveal.device.id", "not the device that offered")
        self.device = reveal.device
        self.sas = sas(self.offer.commitment, reveal.device, reveal.nonce, self.guardian.public, self.nonce)
        return self.sas

    def keyring_for_device(self, now: int, family: str | None = None) -> Keyring:
        """The keyring with this device added (a new family's genesis first if none)."""
        if self.device is None:
            raise PairingError("complete", "no reveal yet")
        ring = self.keyring
        if ring is None:
            ring = Keyring.from_entries([make_genesis(self.guardian, family or os.urandom(16).hex(), now)])
        return ring.extend(ring.entry(self.guardian, Op.ADD_DEVICE, party=self.device, now=now))

    def complete(self, ring: Keyring, messages: tuple[tuple[str, Sealed], ...]) -> Complete:
        return Complete(ring.entries, messages)


def keyring_head(ring: Keyring) -> str:
    return entry_hash(ring.entries[-1])
