"""Request and response bodies, as pydantic models: they are the OpenAPI schema the device
sync (issue 14) and the web app (issue 15) are written against, and the first line of input
validation (unknown keys, wrong types, out-of-range numbers and over-long strings are
refused with the field named). Protocol objects (envelopes, sealed blobs, public parties)
are then parsed again by `protocol`, which checks what a schema cannot (signatures,
canonical base64, ids that hash the keys they name).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from protocol.journal import MAX_UPLOAD_RECORDS, MAX_UPLOAD_SEGMENTS

Hex16 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


B64 = r"^[A-Za-z0-9_-]*$"  # base64url without padding; `protocol` checks it is canonical
B64Key = Annotated[str, StringConstraints(pattern=B64, min_length=43, max_length=43)]  # 32 bytes
B64Sig = Annotated[str, StringConstraints(pattern=B64, min_length=86, max_length=86)]  # 64 bytes
B64Nonce = Annotated[str, StringConstraints(pattern=B64, min_length=16, max_length=16)]  # 12 bytes
B64Salt = Annotated[str, StringConstraints(pattern=B64, min_length=22, max_length=22)]  # 16 bytes
B64Wrap = Annotated[str, StringConstraints(pattern=B64, min_length=107, max_length=107)]  # 80 bytes (HPKE)
B64P256 = Annotated[str, StringConstraints(pattern=B64, min_length=87, max_length=87)]  # 65 bytes
B64Body = Annotated[str, StringConstraints(pattern=B64, min_length=1, max_length=349_526)]  # 262,144 bytes
B64Ct = Annotated[str, StringConstraints(pattern=B64, min_length=22, max_length=1_398_124)]  # 1 MiB + tag
B64Bundle = Annotated[str, StringConstraints(pattern=B64, min_length=22, max_length=5462)]  # 4 KiB
B64Record = Annotated[str, StringConstraints(pattern=B64, min_length=22, max_length=87_382)]  # 64 KiB
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")
]
Label = Annotated[str, StringConstraints(max_length=64)]
Language = Literal["zh-CN", "en"]
Day = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Count = Annotated[int, Field(ge=0, le=2**53 - 1)]
Seq = Annotated[int, Field(ge=0, le=2**53 - 1)]
Time = Annotated[int, Field(ge=0, le=2**53 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- protocol objects


class Party(Strict):
    """A guardian's public keys (PROTOCOL.md §2); `kid` must hash the two keys."""

    kid: Hex16
    sign: Hex32
    seal: Hex32
    label: Label


class DeviceParty(Out):
    id: Hex16
    sign: Hex32
    seal: Hex32
    label: Label


class Envelope(Strict):
    """A signed envelope (PROTOCOL.md §3): `body` is base64url of the exact signed bytes."""

    v: Literal[1]
    kid: Hex16
    body: B64Body
    sig: B64Sig


class Wrap(Strict):
    to: Hex32
    key: B64Wrap


class Sealed(Strict):
    """A sealed blob (PROTOCOL.md §9); the server checks `ctx` and stores the rest unread."""

    v: Literal[1]
    ctx: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x20-\x7e]+$")]
    wraps: Annotated[list[Wrap], Field(min_length=1, max_length=64)]
    nonce: B64Nonce
    ct: B64Ct


class Pbkdf2(Strict):
    alg: Literal["pbkdf2-sha256"]
    iterations: Annotated[int, Field(ge=100_000, le=10_000_000)]
    salt: B64Salt


class Argon2id(Strict):
    alg: Literal["argon2id"]
    memory_kib: Annotated[int, Field(ge=19_456, le=1_048_576)]
    iterations: Annotated[int, Field(ge=1, le=20)]
    parallelism: Annotated[int, Field(ge=1, le=16)]
    salt: B64Salt


Kdf = Annotated[Pbkdf2 | Argon2id, Field(discriminator="alg")]


class Wrapped(Strict):
    """A key bundle sealed under the wrapping key or the recovery key (PROTOCOL.md §13)."""

    nonce: B64Nonce
    ct: B64Bundle


class Problem(Out):
    """RFC 9457 problem details; `field` names the request field at fault, when one is."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    instance: str | None = None
    errors: list[dict[str, str]] | None = None
    retry_after: int | None = None
    # RFC 9457 extension members some problems carry (dashboard/sync.py, pairing, consent)
    next_seq: int | None = None  # a journal upload's gap: send from here
    first_bad_seq: int | None = None  # a journal upload's broken chain starts here
    state: str | None = None  # a pairing session's state when it refuses the step
    current_version: str | None = None  # the consent notice's version when an old one is answered


# ---------------------------------------------------------------------- accounts


class Prelogin(Strict):
    email: Email


class SignUp(Strict):
    email: Email
    kdf: Kdf
    auth: B64Key
    guardian: Party
    wrapped_keys: Wrapped
    recovery_wrapped_keys: Wrapped
    recovery_auth: B64Key
    language: Language = "zh-CN"


class Login(Strict):
    email: Email
    auth: B64Key


class RecoveryStart(Strict):
    email: Email
    recovery_auth: B64Key


class RecoveryKeys(Out):
    kid: Hex16
    recovery_wrapped_keys: Wrapped


class RecoveryFinish(Strict):
    email: Email
    recovery_auth: B64Key
    kdf: Kdf
    auth: B64Key
    wrapped_keys: Wrapped


class PasswordChange(Strict):
    auth: B64Key
    kdf: Kdf
    new_auth: B64Key
    wrapped_keys: Wrapped


class Account(Out):
    email: str
    kid: Hex16
    guardian: Party
    kdf: Kdf
    wrapped_keys: Wrapped
    language: Language
    created_at: Time


class SessionOut(Out):
    csrf_token: str
    expires_at: Time
    account: Account


# ---------------------------------------------------------------------- families


class DeviceStatus(Out):
    id: Hex16
    label: str
    status: Literal["active", "unpairing", "removed"]
    paired_at: Time
    last_contact: Time | None
    queue_depth: Count
    pending_uploads: Count
    journal_cursor: Seq
    policy_queued: Seq
    policy_applied: Seq
    policy_applied_at: Time | None
    policy_applied_by: Hex16 | None
    retention_days: int
    consent: ConsentState


class ConsentState(Out):
    version: str | None
    current_version: str
    accepted: bool
    usage_reports: bool
    push_notifications: bool
    asked_again: bool


class Family(Out):
    id: Hex16
    head_seq: Seq
    head_hash: Hex32
    guardians: list[Party]
    devices: list[DeviceStatus]
    your_kid: Hex16


class KeyringPage(Out):
    family: Hex16
    head_seq: Seq
    head_hash: Hex32
    entries: list[Envelope]


class KeyringPost(Strict):
    entry: Envelope


class InvitationOut(Out):
    id: Hex16
    family: Hex16
    status: Literal["open", "accepted", "admitted", "revoked", "expired"]
    created_at: Time
    expires_at: Time
    invitee: Party | None


class InvitationCreated(InvitationOut):
    token: str


class InvitationAccept(Strict):
    token: B64Key


# ---------------------------------------------------------------------- consent


class NoticeSections(Out):
    purpose: str
    scope: str
    storage: str
    retention: str
    security: str
    refusal: str
    complaints: str
    correction_deletion: str


class Notice(Out):
    version: str
    language: Language
    material: bool
    title: str
    sections: NoticeSections
    optional: dict[str, str]


class ConsentAnswer(Strict):
    version: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    language: Language
    accepted: bool
    usage_reports: bool
    push_notifications: bool


class ConsentRecord(Out):
    device: Hex16
    kid: Hex16
    version: str
    language: Language
    accepted: bool
    usage_reports: bool
    push_notifications: bool
    at: Time


class PendingConsent(Out):
    family: Hex16
    device: Hex16
    label: str
    answered_version: str | None
    current_version: str


# ---------------------------------------------------------------------- pairing


class Offer(Strict):
    device_id: Hex16
    commitment: Hex32


class PairingCreate(Strict):
    offer: Offer


class PairingCreated(Out):
    session: Hex16
    secret: str
    code: Annotated[str, StringConstraints(pattern=r"^\d{8}$")]
    expires_at: Time
    server_key: Hex32


class PairingClaim(Strict):
    code: Annotated[str, StringConstraints(pattern=r"^\d{8}$")]


class PairingClaimed(Out):
    session: Hex16
    offer: dict[str, str]
    expires_at: Time
    notice: str


class PairingResponse(Strict):
    """PROTOCOL.md §7.1 step 2, relayed to the device as it is."""

    guardian: Party
    nonce: B64Key
    family: Hex16 | None
    mac: B64Key | None


class RevealDevice(Strict):
    id: Hex16
    sign: Hex32
    seal: Hex32
    label: Label


class PairingReveal(Strict):
    device: RevealDevice
    nonce: B64Key


class SealedMessage(Strict):
    id: Hex16
    sealed: Sealed


class Complete(Strict):
    entries: Annotated[list[Envelope], Field(min_length=1, max_length=1000)]
    messages: Annotated[list[SealedMessage], Field(max_length=16)]


class MessageMeta(Strict):
    id: Hex16
    type: Literal["policy", "decision", "consent"]
    seq: Seq
    retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class PairingComplete(Strict):
    complete: Complete
    meta: Annotated[list[MessageMeta], Field(max_length=16)]


class PairingState(Out):
    session: Hex16
    state: Literal["offered", "claimed", "responded", "revealed", "completed", "paired", "aborted", "expired"]
    expires_at: Time
    reason: str | None
    device: Hex16
    family: Hex16 | None


class PairingAbort(Strict):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class PairedPost(Strict):
    envelope: Envelope


# ---------------------------------------------------------------------- device auth and sync


class Challenge(Strict):
    device_id: Hex16


class ChallengeOut(Out):
    nonce: B64Key
    server_time: Time
    expires_at: Time
    origin: str


class TokenRequest(Strict):
    device_id: Hex16
    nonce: B64Key
    signature: B64Sig


class TokenOut(Out):
    token: str
    expires_at: Time


class SignedTime(Out):
    time: Time
    nonce: B64Salt
    signature: B64Sig
    server_key: Hex32


class SegmentKey(Strict):
    recipient: Hex32
    wrapped: B64Wrap


class WireSegment(Strict):
    uid: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    keys: Annotated[list[SegmentKey], Field(min_length=1, max_length=64)]


class WireRecord(Strict):
    seq: Annotated[int, Field(ge=1, le=2**53 - 1)]
    segment: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    nonce: B64Nonce
    ciphertext: B64Record


class WireCheckpoint(Strict):
    seq: Annotated[int, Field(ge=1, le=2**53 - 1)]
    head: B64Key
    at: Annotated[int, Field(ge=-(2**53) + 1, le=2**53 - 1)]
    signature: B64Sig


class WireAnchor(Strict):
    seq: Annotated[int, Field(ge=1, le=2**53 - 1)]
    head: B64Key
    signature: B64Sig


class JournalUpload(Strict):
    epoch: Hex16 | None = None
    acked: Seq | None = None
    head: Seq
    anchor: WireAnchor | None = None
    segments: Annotated[list[WireSegment], Field(max_length=MAX_UPLOAD_SEGMENTS)] = []
    records: Annotated[list[WireRecord], Field(max_length=MAX_UPLOAD_RECORDS)]
    checkpoints: Annotated[list[WireCheckpoint], Field(max_length=MAX_UPLOAD_RECORDS)]


class JournalCursor(Out):
    epoch: Hex16
    cursor: Seq
    pending: Seq
    next_seq: Seq
    base_seq: Seq


class SummaryUpload(Strict):
    day: Day
    sealed: Sealed


class RequestUpload(Strict):
    id: Hex16
    kind: Literal["more_time", "purchase", "report"]
    sealed: Sealed


class CatalogueUpload(Strict):
    sealed: Sealed


class AckUpload(Strict):
    acks: Annotated[list[Envelope], Field(min_length=1, max_length=100)]


class AckResult(Out):
    message: Hex16
    status: Literal["applied", "refused", "duplicate", "unknown"]


class AckResults(Out):
    results: list[AckResult]


class ReceiptUpload(Strict):
    envelope: Envelope


class ServerReceipt(Out):
    body: str
    sig: str


class QueueItem(Out):
    id: Hex16
    n: Seq
    type: Literal["policy", "decision", "consent", "keyring", "server_receipt"]
    seq: Seq
    queued_at: Time
    sealed: Sealed | None = None
    entry: Envelope | None = None
    receipt: ServerReceipt | None = None


class Queue(Out):
    device: Hex16
    status: Literal["active", "unpairing", "removed"]
    messages: list[QueueItem]


class Accepted(Out):
    ok: Literal[True] = True


# ---------------------------------------------------------------------- guardian: queue, data


class MessagePost(Strict):
    id: Hex16
    type: Literal["policy", "decision", "consent"]
    seq: Seq
    sealed: Sealed
    retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class Delivery(Out):
    id: Hex16
    type: str
    seq: Seq
    sender: Hex16 | None
    queued_at: Time
    status: Literal["queued", "applied", "refused", "duplicate"]
    acked_at: Time | None
    ack: Envelope | None
    # the sealed message as queued (sealed to the device and to every guardian active then):
    # the guardians' apps reopen it (the policy in force, the guardian-code secret)
    sealed: Sealed | None = None


class JournalSegmentOut(Out):
    uid: str
    keys: list[SegmentKey]


class JournalPage(Out):
    device: Hex16
    base_seq: Seq
    base_hash: str
    cursor: Seq
    segments: list[JournalSegmentOut]
    records: list[WireRecord]
    checkpoints: list[WireCheckpoint]
    next_after: Seq | None


class SummaryOut(Out):
    day: str
    sealed: Sealed
    received_at: Time


class RequestOut(Out):
    id: Hex16
    kind: str
    sealed: Sealed
    received_at: Time
    handled_at: Time | None
    handled_by: Hex16 | None


class CatalogueOut(Out):
    sealed: Sealed
    received_at: Time


class DeviceReceiptOut(Out):
    id: Hex16
    envelope: Envelope
    received_at: Time


class Holdings(Out):
    device: Hex16
    kinds: dict[str, int]


class DeletionOut(Out):
    receipt_id: Hex16
    deleted: dict[str, int]


class DeleteRequest(Strict):
    decision: Hex16 | None = None


class AuditEntry(Out):
    id: int
    device: Hex16 | None
    kid: Hex16 | None
    action: str
    detail: dict[str, Any]
    at: Time


class Event(Out):
    id: int
    family: Hex16
    device: Hex16 | None
    kind: str
    data: dict[str, Any]
    at: Time


class Events(Out):
    events: list[Event]
    next_after: int


class Export(Out):
    device: Hex16
    exported_at: Time
    journal: JournalPage
    summaries: list[SummaryOut]
    requests: list[RequestOut]
    catalogue: CatalogueOut | None
    messages: list[Delivery]
    receipts: list[DeviceReceiptOut]
    consents: list[ConsentRecord]


# ---------------------------------------------------------------------- web push


class VapidKey(Out):
    public_key: str


class PushKeys(Strict):
    p256dh: B64P256
    auth: B64Salt


class PushSubscription(Strict):
    endpoint: Annotated[
        str, StringConstraints(min_length=8, max_length=1024, pattern=r"^https?://[\x21-\x7e]+$")
    ]
    keys: PushKeys


class PushUnsubscribe(Strict):
    endpoint: Annotated[
        str, StringConstraints(min_length=8, max_length=1024, pattern=r"^https?://[\x21-\x7e]+$")
    ]


DeviceStatus.model_rebuild()
