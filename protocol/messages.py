"""The payloads of guardian and device messages (PROTOCOL.md §5, §6) as immutable values.

`parse_payload(body)` turns a verified body's payload into one of these values or raises a
`ProtocolError` naming the field; `payload_json(value)` is the inverse for senders. The
policy itself is carried as a plain mapping: the device validates it with the very parser
its policy files go through (the agent's `core.parse`), which this package must not import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protocol.encoding import Fields, b64
from protocol.envelope import Body, MessageType
from protocol.errors import ProtocolError

HOUR = 3600
DAY = 24 * HOUR
MAX_APPS = 2_000
MAX_COUNTED = 5_000  # distinct apps / domains counted in one summary


class DecisionKind(StrEnum):
    GRANT_TIME = "grant_time"
    DENY_REQUEST = "deny_request"
    PURCHASE = "purchase"
    LOCK = "lock"
    UNLOCK = "unlock"
    LEAVE_MINOR_MODE = "leave_minor_mode"
    ENTER_MINOR_MODE = "enter_minor_mode"
    SET_GUARDIAN_CODE = "set_guardian_code"
    DELETE_DATA = "delete_data"
    UNPAIR = "unpair"


# ---------------------------------------------------------------------- guardian messages


@dataclass(frozen=True)
class PolicyMessage:
    policy: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class GrantTime:
    minutes: int
    request_id: str | None
    kind: DecisionKind = DecisionKind.GRANT_TIME


@dataclass(frozen=True)
class DenyRequest:
    request_id: str
    kind: DecisionKind = DecisionKind.DENY_REQUEST


@dataclass(frozen=True)
class PurchaseDecision:
    request_id: str
    approve: bool
    kind: DecisionKind = DecisionKind.PURCHASE


@dataclass(frozen=True)
class Until:
    """lock / unlock / leave_minor_mode: in force from application until `until`."""

    kind: DecisionKind
    until: int


@dataclass(frozen=True)
class EnterMinorMode:
    kind: DecisionKind = DecisionKind.ENTER_MINOR_MODE


@dataclass(frozen=True)
class SetGuardianCode:
    secret: bytes = field(repr=False)
    unlock_minutes: int
    kind: DecisionKind = DecisionKind.SET_GUARDIAN_CODE


@dataclass(frozen=True)
class DeleteData:
    """delete_data (scope "all") and unpair."""

    kind: DecisionKind
    reason: str
    scope: str = "all"


Decision = GrantTime | DenyRequest | PurchaseDecision | Until | EnterMinorMode | SetGuardianCode | DeleteData

UNTIL_LIMIT = {
    DecisionKind.LOCK: 7 * DAY,
    DecisionKind.UNLOCK: DAY,
    DecisionKind.LEAVE_MINOR_MODE: DAY,
}


@dataclass(frozen=True)
class Consent:
    notice: str
    language: str
    accepted: bool
    usage_reports: bool
    push_notifications: bool


# ---------------------------------------------------------------------- device messages


class AckResult(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Ack:
    message: str
    type: str
    result: AckResult
    reason: str
    applied_at: int | None
    policy_version: int


class RequestKind(StrEnum):
    MORE_TIME = "more_time"
    PURCHASE = "purchase"
    REPORT = "report"


REPORT_KINDS = ("help", "harmful_content", "bullying", "other")


@dataclass(frozen=True)
class ChildRequest:
    request_id: str
    kind: RequestKind
    minutes: int = 0  # more_time
    note: str = ""  # more_time, report
    app_id: str = ""  # purchase
    item: str = ""
    amount: int = 0
    currency: str = ""
    report_kind: str = ""  # report


@dataclass(frozen=True)
class Summary:
    day: str
    timezone: str
    used_seconds: int
    budget_seconds: int | None
    per_app: dict[str, int] = field(hash=False)
    hourly: tuple[int, ...]
    blocked_apps: dict[str, int] = field(hash=False)
    blocked_domains: dict[str, int] = field(hash=False)
    purchases: tuple[dict[str, Any], ...]
    requests: int
    tamper: dict[str, int] = field(hash=False)
    policy_version: int


@dataclass(frozen=True)
class Receipt:
    decision: str | None
    reason: str
    segments: int
    records: int
    up_to_seq: int
    at: int


@dataclass(frozen=True)
class CatalogueApp:
    id: str
    name: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    apps: tuple[CatalogueApp, ...]


@dataclass(frozen=True)
class Paired:
    keyring_head: str
    keyring_seq: int
    session: str


Payload = (PolicyMessage | Decision | Consent | Ack | ChildRequest | Summary | Receipt | Catalogue
           | Paired)


# ---------------------------------------------------------------------- reading


def parse_payload(body: Body, where: str = "body.payload") -> Payload:
    """The typed payload of a verified, non-keyring body."""
    f = Fields(body.payload, where)
    reader = _READERS.get(body.type)
    if reader is None:
        raise ProtocolError(where, f"{body.type.value} has no message payload")
    value: Payload = reader(f, body)
    f.done()
    return value


def _policy(f: Fields, body: Body) -> PolicyMessage:
    policy = f.obj("policy")
    version = policy.value.get("version")
    if version != body.seq or isinstance(version, bool):
        raise ProtocolError(policy.at("version"), f"{version!r} must equal the body's seq {body.seq}")
    return PolicyMessage(dict(policy.value))


def _decision(f: Fields, body: Body) -> Decision:
    kind = DecisionKind(f.choice("kind", tuple(k.value for k in DecisionKind)))
    if kind is DecisionKind.GRANT_TIME:
        return GrantTime(f.int_("minutes", low=1, high=720), f.hexid("request_id", optional=True))
    if kind is DecisionKind.DENY_REQUEST:
        return DenyRequest(f.hex_("request_id"))
    if kind is DecisionKind.PURCHASE:
        return PurchaseDecision(f.hex_("request_id"), f.boolean("approve"))
    if kind in UNTIL_LIMIT:
        until = f.int_("until")
        if not body.iat < until <= body.iat + UNTIL_LIMIT[kind]:
            raise ProtocolError(f.at("until"), f"must be after iat and at most "
                                f"{UNTIL_LIMIT[kind] // HOUR} h later")
        return Until(kind, until)
    if kind is DecisionKind.ENTER_MINOR_MODE:
        return EnterMinorMode()
    if kind is DecisionKind.SET_GUARDIAN_CODE:
        return SetGuardianCode(f.bytes_("secret", size=32), f.int_("unlock_minutes", low=5, high=240))
    scope = f.choice("scope", ("all",)) if kind is DecisionKind.DELETE_DATA else "all"
    return DeleteData(kind, f.text("reason", min_len=1, max_len=200), scope)


def _consent(f: Fields, body: Body) -> Consent:
    notice = f.text("notice", min_len=1, max_len=32)
    language = f.choice("language", ("zh-CN", "en"))
    accepted = f.boolean("accepted")
    optional = f.obj("optional")
    consent = Consent(notice, language, accepted, optional.boolean("usage_reports"),
                      optional.boolean("push_notifications"))
    optional.done()
    return consent


def _ack(f: Fields, body: Body) -> Ack:
    return Ack(f.hex_("message"), f.choice("type", tuple(t.value for t in MessageType)),
               AckResult(f.choice("result", tuple(r.value for r in AckResult))),
               f.text("reason", max_len=500), f.integer("applied_at", optional=True),
               f.int_("policy_version"))


def _request(f: Fields, body: Body) -> ChildRequest:
    rid = f.hex_("request_id")
    kind = RequestKind(f.choice("kind", tuple(k.value for k in RequestKind)))
    if kind is RequestKind.MORE_TIME:
        return ChildRequest(rid, kind, minutes=f.int_("minutes", low=1, high=240),
                            note=f.text("note", max_len=500))
    if kind is RequestKind.PURCHASE:
        return ChildRequest(rid, kind, app_id=f.text("app_id", min_len=1, max_len=255),
                            item=f.text("item", min_len=1, max_len=200),
                            amount=f.int_("amount", low=1), currency=f.text("currency", min_len=3, max_len=3))
    return ChildRequest(rid, kind, report_kind=f.choice("report_kind", REPORT_KINDS),
                        note=f.text("note", max_len=2000))


def _counts(f: Fields, key: str) -> dict[str, int]:
    sub = f.obj(key)
    if len(sub.value) > MAX_COUNTED:
        raise ProtocolError(sub.at(""), f"at most {MAX_COUNTED} entries")
    out = {}
    for name in list(sub.value):
        if not 1 <= len(name) <= 255:
            raise ProtocolError(sub.at(name[:40]), "names are 1..255 characters")
        out[name] = sub.int_(name)
    sub.done()
    return out


def _summary(f: Fields, body: Body) -> Summary:
    day = f.text("day", min_len=10, max_len=10)
    hourly = f.array("hourly", max_items=24)
    if len(hourly) != 24 or any(isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= HOUR
                                for h in hourly):
        raise ProtocolError(f.at("hourly"), "24 integers of 0..3600 seconds")
    purchases = []
    for i, p in enumerate(f.array("purchases", max_items=1000)):
        pf = Fields(p, f"{f.at('purchases')}[{i}]")
        purchases.append({"item": pf.text("item", max_len=200), "amount": pf.int_("amount"),
                          "currency": pf.text("currency", min_len=3, max_len=3),
                          "status": pf.text("status", min_len=1, max_len=16)})
        pf.done()
    return Summary(day, f.text("timezone", min_len=1, max_len=64), f.int_("used_seconds", high=DAY + HOUR),
                   f.integer("budget_seconds", optional=True), _counts(f, "per_app"), tuple(hourly),
                   _counts(f, "blocked_apps"), _counts(f, "blocked_domains"), tuple(purchases),
                   f.int_("requests"), _counts(f, "tamper"), f.int_("policy_version"))


def _receipt(f: Fields, body: Body) -> Receipt:
    return Receipt(f.hexid("decision", optional=True), f.text("reason", min_len=1, max_len=200),
                   f.int_("segments"), f.int_("records"), f.int_("up_to_seq"), f.int_("at"))


def _catalogue(f: Fields, body: Body) -> Catalogue:
    apps = []
    for i, a in enumerate(f.array("apps", max_items=MAX_APPS)):
        af = Fields(a, f"{f.at('apps')}[{i}]")
        cats = af.array("categories", max_items=32)
        if any(not isinstance(c, str) or not 1 <= len(c) <= 64 for c in cats):
            raise ProtocolError(af.at("categories"), "category names are 1..64 characters")
        apps.append(CatalogueApp(af.text("id", min_len=1, max_len=255), af.text("name", max_len=200),
                                 tuple(cats)))
        af.done()
    return Catalogue(tuple(apps))


def _paired(f: Fields, body: Body) -> Paired:
    return Paired(f.hex_("keyring_head", 32), f.int_("keyring_seq"), f.hex_("session"))


_READERS: dict[MessageType, Any] = {
    MessageType.POLICY: _policy,
    MessageType.DECISION: _decision,
    MessageType.CONSENT: _consent,
    MessageType.ACK: _ack,
    MessageType.REQUEST: _request,
    MessageType.SUMMARY: _summary,
    MessageType.RECEIPT: _receipt,
    MessageType.CATALOGUE: _catalogue,
    MessageType.PAIRED: _paired,
}


# ---------------------------------------------------------------------- writing


def payload_json(value: Payload) -> tuple[MessageType, dict[str, Any]]:
    """The message type and payload object for a value (senders' side)."""
    if isinstance(value, PolicyMessage):
        return MessageType.POLICY, {"policy": value.policy}
    if isinstance(value, GrantTime):
        return MessageType.DECISION, {"kind": value.kind.value, "minutes": value.minutes,
                                      "request_id": value.request_id}
    if isinstance(value, DenyRequest):
        return MessageType.DECISION, {"kind": value.kind.value, "request_id": value.request_id}
    if isinstance(value, PurchaseDecision):
        return MessageType.DECISION, {"kind": value.kind.value, "request_id": value.request_id,
                                      "approve": value.approve}
    if isinstance(value, Until):
        return MessageType.DECISION, {"kind": value.kind.value, "until": value.until}
    if isinstance(value, EnterMinorMode):
        return MessageType.DECISION, {"kind": value.kind.value}
    if isinstance(value, SetGuardianCode):
        return MessageType.DECISION, {"kind": value.kind.value, "secret": b64(value.secret),
                                      "unlock_minutes": value.unlock_minutes}
    if isinstance(value, DeleteData):
        out: dict[str, Any] = {"kind": value.kind.value, "reason": value.reason}
        if value.kind is DecisionKind.DELETE_DATA:
            out["scope"] = value.scope
        return MessageType.DECISION, out
    if isinstance(value, Consent):
        return MessageType.CONSENT, {
            "notice": value.notice, "language": value.language, "accepted": value.accepted,
            "optional": {"usage_reports": value.usage_reports,
                         "push_notifications": value.push_notifications}}
    if isinstance(value, Ack):
        return MessageType.ACK, {"message": value.message, "type": value.type, "result": value.result.value,
                                 "reason": value.reason, "applied_at": value.applied_at,
                                 "policy_version": value.policy_version}
    if isinstance(value, ChildRequest):
        out = {"request_id": value.request_id, "kind": value.kind.value}
        if value.kind is RequestKind.MORE_TIME:
            out |= {"minutes": value.minutes, "note": value.note}
        elif value.kind is RequestKind.PURCHASE:
            out |= {"app_id": value.app_id, "item": value.item, "amount": value.amount,
                    "currency": value.currency}
        else:
            out |= {"report_kind": value.report_kind, "note": value.note}
        return MessageType.REQUEST, out
    if isinstance(value, Summary):
        return MessageType.SUMMARY, {
            "day": value.day, "timezone": value.timezone, "used_seconds": value.used_seconds,
            "budget_seconds": value.budget_seconds, "per_app": value.per_app, "hourly": list(value.hourly),
            "blocked_apps": value.blocked_apps, "blocked_domains": value.blocked_domains,
            "purchases": list(value.purchases), "requests": value.requests, "tamper": value.tamper,
            "policy_version": value.policy_version}
    if isinstance(value, Receipt):
        return MessageType.RECEIPT, {"decision": value.decision, "reason": value.reason,
                                     "segments": value.segments, "records": value.records,
                                     "up_to_seq": value.up_to_seq, "at": value.at}
    if isinstance(value, Catalogue):
        return MessageType.CATALOGUE, {"apps": [{"id": a.id, "name": a.name, "categories": list(a.categories)}
                                                for a in value.apps]}
    return MessageType.PAIRED, {"keyring_head": value.keyring_head, "keyring_seq": value.keyring_seq,
                                "session": value.session}
