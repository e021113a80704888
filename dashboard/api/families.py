"""Guardian routes for families: keyring, invitations, devices, the queue and delivery
status, the child's sealed data (every read audited), data rights, consent, audit."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from dashboard import audit, consent, datarights, deliveries, families
from dashboard.api import models as m
from dashboard.api.deps import (
    DeviceId,
    FamilyId,
    Guardian,
    GuardianDep,
    State,
    require_device,
    require_member,
)
from dashboard.db.schema import accounts, consents, devices, invitations, memberships
from dashboard.db.schema import audit as audit_table
from dashboard.db.schema import families as families_table
from dashboard.devices import status_view
from dashboard.errors import Problem
from dashboard.families import family_guardian_accounts
from dashboard.jsoncol import from_json
from dashboard.push.hub import device_topic, family_topic
from dashboard.state import AppState

router = APIRouter(prefix="/api/v1", tags=["families"])
Hex = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def _family_view(conn: Any, family_id: str, who: Guardian) -> dict[str, Any]:
    ring = families.load_keyring(conn, family_id)
    devs = conn.execute(
        select(devices).where(devices.c.family_id == family_id).order_by(devices.c.paired_at)
    ).all()
    return {
        "id": family_id,
        "head_seq": ring.head_seq,
        "head_hash": ring.head_hash,
        "guardians": [
            {"kid": g.id, "sign": g.sign.hex(), "seal": g.seal.hex(), "label": g.label}
            for g in ring.seal_keys
        ],
        "devices": [status_view(conn, d) for d in devs],
        "your_kid": who.kid,
    }


@router.get("/families", response_model=list[m.Family])
def list_families(who: GuardianDep, state: State) -> list[dict[str, Any]]:
    with state.db.read() as conn:
        return [_family_view(conn, r.family_id, who) for r in families.memberships_of(conn, who.account_id)]


@router.get("/families/{family}", response_model=m.Family)
def get_family(family: FamilyId, who: GuardianDep, state: State) -> dict[str, Any]:
    with state.db.read() as conn:
        require_member(conn, who, family)
        return _family_view(conn, family, who)


@router.get("/families/{family}/keyring", response_model=m.KeyringPage)
def get_keyring(
    family: FamilyId, who: GuardianDep, state: State, after: Annotated[int, Query(ge=-1, le=1_000_000)] = -1
) -> dict[str, Any]:
    """Keyring entries after `after` (all by default); the app verifies them itself."""
    with state.db.read() as conn:
        require_member(conn, who, family)
        row = conn.execute(select(families_table).where(families_table.c.id == family)).one()
        return {
            "family": family,
            "head_seq": row.head_seq,
            "head_hash": row.head_hash,
            "entries": [e.to_json() for e in families.stored_entries(conn, family, after)],
        }


@router.post("/families/{family}/keyring", status_code=201, response_model=m.KeyringPage)
def post_keyring_entry(
    family: FamilyId, body: m.KeyringPost, who: GuardianDep, state: State
) -> dict[str, Any]:
    """Append an entry: it must extend the stored chain, signed by your (active) key."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        ring, woken = families.append_entry(conn, family, body.entry.model_dump(), who.kid, now)
    state.hub.publish([family_topic(family), *[device_topic(d) for d in woken]])
    return {"family": family, "head_seq": ring.head_seq, "head_hash": ring.head_hash, "entries": []}


# ---------------------------------------------------------------------- invitations


@router.post("/families/{family}/invitations", status_code=201, response_model=m.InvitationCreated)
def create_invitation(family: FamilyId, who: GuardianDep, state: State) -> dict[str, Any]:
    """A token for the link `<dashboard>/invite#t=<token>&h=<keyring head hash>` (PROTOCOL.md §8)."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        invite_id, token = families.create_invitation(
            conn, family, who.account_id, now, state.settings.invitation_ttl
        )
        row = conn.execute(select(invitations).where(invitations.c.id == invite_id)).one()
        return families.invitation_view(conn, row, now) | {"token": token}


@router.get("/families/{family}/invitations", response_model=list[m.InvitationOut])
def list_invitations(family: FamilyId, who: GuardianDep, state: State) -> list[dict[str, Any]]:
    now = state.now()
    with state.db.read() as conn:
        require_member(conn, who, family)
        rows = conn.execute(
            select(invitations).where(invitations.c.family_id == family).order_by(invitations.c.created_at)
        ).all()
        return [families.invitation_view(conn, r, now) for r in rows]


@router.delete("/families/{family}/invitations/{invitation}", status_code=204, response_class=Response)
def revoke_invitation(family: FamilyId, invitation: Hex, who: GuardianDep, state: State) -> Response:
    with state.db.write() as conn:
        require_member(conn, who, family)
        row = conn.execute(
            select(invitations).where(invitations.c.id == invitation, invitations.c.family_id == family)
        ).first()
        if row is None or row.status == "admitted":
            raise Problem(404, "not-found", "no such open invitation", field="path.invitation")
        conn.execute(invitations.update().where(invitations.c.id == invitation).values(status="revoked"))
    return Response(status_code=204)


@router.post("/invitations/accept", response_model=m.InvitationOut)
def accept_invitation(body: m.InvitationAccept, who: GuardianDep, state: State) -> dict[str, Any]:
    """The invitee records their public keys; an existing guardian then signs add_guardian."""
    now = state.now()
    with state.db.write() as conn:
        row = families.accept_invitation(conn, body.token, who.row, now)
        view = families.invitation_view(conn, row, now)
    state.hub.publish([family_topic(row.family_id)])
    return view


@router.get("/invitations/mine", response_model=list[m.InvitationOut])
def my_invitations(who: GuardianDep, state: State) -> list[dict[str, Any]]:
    """Invitations you accepted (waiting for a guardian's signature, or admitted)."""
    now = state.now()
    with state.db.read() as conn:
        rows = conn.execute(select(invitations).where(invitations.c.invitee_id == who.account_id)).all()
        return [families.invitation_view(conn, r, now) for r in rows]


# ---------------------------------------------------------------------- devices and the queue


@router.get("/families/{family}/devices", response_model=list[m.DeviceStatus])
def list_devices(family: FamilyId, who: GuardianDep, state: State) -> list[dict[str, Any]]:
    with state.db.read() as conn:
        require_member(conn, who, family)
        rows = conn.execute(select(devices).where(devices.c.family_id == family)).all()
        return [status_view(conn, r) for r in rows]


@router.get("/families/{family}/devices/{device}", response_model=m.DeviceStatus)
def get_device(family: FamilyId, device: DeviceId, who: GuardianDep, state: State) -> dict[str, Any]:
    with state.db.read() as conn:
        require_member(conn, who, family)
        return status_view(conn, require_device(conn, family, device))


@router.post("/families/{family}/devices/{device}/messages", status_code=201, response_model=m.Delivery)
def post_message(
    family: FamilyId, device: DeviceId, body: m.MessagePost, who: GuardianDep, state: State
) -> dict[str, Any]:
    """Queue a signed, sealed policy, decision or consent for the device."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        deliveries.post(conn, family, device, body, who.kid, now)
        out = deliveries.one(conn, device, body.id)
    state.hub.publish([device_topic(device)])
    return out


@router.get("/families/{family}/devices/{device}/messages", response_model=list[m.Delivery])
def list_messages(
    family: FamilyId,
    device: DeviceId,
    who: GuardianDep,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
) -> list[dict[str, Any]]:
    """Delivery status, newest first, with the device's signed acks."""
    with state.db.read() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        return deliveries.deliveries(conn, device, limit, before)


@router.get("/families/{family}/devices/{device}/messages/{message}", response_model=m.Delivery)
def get_message(
    family: FamilyId, device: DeviceId, message: Hex, who: GuardianDep, state: State
) -> dict[str, Any]:
    with state.db.read() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        return deliveries.one(conn, device, message)


# ---------------------------------------------------------------------- the child's data (audited)


def _audited_read(state: AppState, who: Guardian, family: str, device: str, action: str, read: Any) -> Any:
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        dev = require_device(conn, family, device)
        out, detail = read(conn, dev, now)
        audit.record(
            conn,
            family=family,
            device=device,
            account_id=who.account_id,
            kid=who.kid,
            action=action,
            detail=detail,
            now=now,
        )
        return out


@router.get("/families/{family}/devices/{device}/journal", response_model=m.JournalPage)
def read_journal(
    family: FamilyId,
    device: DeviceId,
    who: GuardianDep,
    state: State,
    after: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """Sealed records after `after` up to the acknowledged cursor, with their segments' key
    wraps and checkpoints (verify with protocol.journal.check_range)."""

    def read(conn: Any, dev: Any, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
        page = datarights.journal_page(conn, dev, max(after, dev.base_seq), limit)
        return page, {"records": len(page["records"]), "after": after}

    out: dict[str, Any] = _audited_read(state, who, family, device, "read_journal", read)
    return out


@router.get("/families/{family}/devices/{device}/summaries", response_model=list[m.SummaryOut])
def read_summaries(
    family: FamilyId,
    device: DeviceId,
    who: GuardianDep,
    state: State,
    start: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    end: Annotated[str | None, Query(alias="to", pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
) -> list[dict[str, Any]]:
    def read(conn: Any, dev: Any, now: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = datarights.summaries_of(conn, dev.id, start, end)
        return rows, {"summaries": len(rows), "from": start, "to": end}

    out: list[dict[str, Any]] = _audited_read(state, who, family, device, "read_summaries", read)
    return out


@router.get("/families/{family}/devices/{device}/requests", response_model=list[m.RequestOut])
def read_requests(
    family: FamilyId,
    device: DeviceId,
    who: GuardianDep,
    state: State,
    status: Literal["open", "handled", "all"] = "all",
) -> list[dict[str, Any]]:
    def read(conn: Any, dev: Any, now: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = datarights.requests_of(conn, dev.id, status)
        return rows, {"requests": len(rows), "status": status}

    out: list[dict[str, Any]] = _audited_read(state, who, family, device, "read_requests", read)
    return out


@router.post("/families/{family}/devices/{device}/requests/{request}/handled", response_model=m.Accepted)
def handle_request(
    family: FamilyId, device: DeviceId, request: Hex, who: GuardianDep, state: State
) -> dict[str, Any]:
    """Mark a child's report (or any request) handled: the other guardians see it so."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        datarights.mark_handled(conn, device, request, who.kid, now)
        audit.emit(
            conn,
            family=family,
            device=device,
            kind="request",
            data={"id": request, "handled_by": who.kid},
            now=now,
        )
    state.hub.publish([family_topic(family)])
    return {"ok": True}


@router.get("/families/{family}/devices/{device}/catalogue", response_model=m.CatalogueOut)
def read_catalogue(family: FamilyId, device: DeviceId, who: GuardianDep, state: State) -> dict[str, Any]:
    def read(conn: Any, dev: Any, now: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        return datarights.catalogue_of(conn, dev.id), {}

    out: dict[str, Any] | None = _audited_read(state, who, family, device, "read_catalogue", read)
    if out is None:
        raise Problem(404, "not-found", "the device has not sent its app catalogue yet")
    return out


@router.get("/families/{family}/devices/{device}/receipts", response_model=list[m.DeviceReceiptOut])
def read_receipts(family: FamilyId, device: DeviceId, who: GuardianDep, state: State) -> list[dict[str, Any]]:
    """The device's signed deletion receipts."""
    with state.db.read() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        return datarights.receipts_of(conn, device)


@router.get("/families/{family}/devices/{device}/holdings", response_model=m.Holdings)
def holdings(family: FamilyId, device: DeviceId, who: GuardianDep, state: State) -> dict[str, Any]:
    """What the server holds for this device: kinds of thing and counts."""
    with state.db.read() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        return {"device": device, "kinds": datarights.holdings(conn, device)}


@router.get("/families/{family}/devices/{device}/export", response_model=m.Export)
def export(family: FamilyId, device: DeviceId, who: GuardianDep, state: State) -> dict[str, Any]:
    """Everything held for this device, sealed as stored (the app decrypts it locally)."""

    def read(conn: Any, dev: Any, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
        out = datarights.export(conn, dev, now)
        return out, {
            "records": len(out["journal"]["records"]),
            "summaries": len(out["summaries"]),
            "requests": len(out["requests"]),
        }

    out: dict[str, Any] = _audited_read(state, who, family, device, "export", read)
    return out


@router.delete("/families/{family}/devices/{device}/data", response_model=m.DeletionOut)
def delete_data(
    family: FamilyId,
    device: DeviceId,
    who: GuardianDep,
    state: State,
    decision: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
) -> dict[str, Any]:
    """Delete the child's data on the server now; a server-signed receipt is queued for the
    device (send the signed `delete_data` decision too, for the device's own deletion)."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        receipt, deleted = datarights.delete_data(conn, device, who, decision, state.secrets.signing_key, now)
    state.hub.publish([device_topic(device)])
    return {"receipt_id": receipt, "deleted": deleted}


@router.post("/families/{family}/devices/{device}/unpair", response_model=m.DeletionOut)
def unpair(
    family: FamilyId, device: DeviceId, body: m.DeleteRequest, who: GuardianDep, state: State
) -> dict[str, Any]:
    """Unpair: queue the signed `unpair` decision first; this deletes the child's data on
    the server and queues the server's signed receipt; the device is forgotten once it
    acknowledges that receipt. Then sign a `remove_device` keyring entry."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        receipt, deleted = datarights.unpair(conn, device, who, body.decision, state.secrets.signing_key, now)
    state.hub.publish([device_topic(device), family_topic(family)])
    return {"receipt_id": receipt, "deleted": deleted}


@router.get("/families/{family}/audit", response_model=list[m.AuditEntry])
def read_audit(
    family: FamilyId,
    who: GuardianDep,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
) -> list[dict[str, Any]]:
    """Who read, exported or deleted what (newest first)."""
    with state.db.read() as conn:
        require_member(conn, who, family)
        query = select(audit_table).where(audit_table.c.family_id == family)
        if before is not None:
            query = query.where(audit_table.c.id < before)
        rows = conn.execute(query.order_by(audit_table.c.id.desc()).limit(limit)).all()
        return [
            {
                "id": r.id,
                "device": r.device_id,
                "kid": r.kid,
                "action": r.action,
                "detail": from_json(r.detail),
                "at": r.at,
            }
            for r in rows
        ]


# ---------------------------------------------------------------------- consent


@router.get("/consent/notice", response_model=m.Notice, tags=["consent"])
def get_notice(language: m.Language = "zh-CN") -> dict[str, Any]:
    """The consent notice in force (public: shown before sign-up too)."""
    return consent.notice_view(language)


@router.get("/consent/pending", response_model=list[m.PendingConsent], tags=["consent"])
def pending_consent(who: GuardianDep, state: State) -> list[dict[str, Any]]:
    """Devices whose notice you have not answered since its last material change."""
    out = []
    with state.db.read() as conn:
        for member in families.memberships_of(conn, who.account_id):
            for dev in conn.execute(
                select(devices).where(devices.c.family_id == member.family_id, devices.c.status == "active")
            ).all():
                answered = consent.answered_by(conn, dev.id, who.account_id)
                if answered is None or not consent.answers_current(answered):
                    out.append(
                        {
                            "family": member.family_id,
                            "device": dev.id,
                            "label": dev.label,
                            "answered_version": answered,
                            "current_version": consent.current().version,
                        }
                    )
    return out


@router.post(
    "/families/{family}/devices/{device}/consent",
    status_code=201,
    response_model=m.ConsentRecord,
    tags=["consent"],
)
def answer_consent(
    family: FamilyId, device: DeviceId, body: m.ConsentAnswer, who: GuardianDep, state: State
) -> dict[str, Any]:
    """Record your answer (send the signed `consent` message to the device as well)."""
    now = state.now()
    with state.db.write() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        consent_id = consent.record(
            conn, family=family, device=device, account_id=who.account_id, kid=who.kid, answer=body, now=now
        )
        return consent.consent_view(conn.execute(select(consents).where(consents.c.id == consent_id)).one())


@router.get(
    "/families/{family}/devices/{device}/consents", response_model=list[m.ConsentRecord], tags=["consent"]
)
def list_consents(family: FamilyId, device: DeviceId, who: GuardianDep, state: State) -> list[dict[str, Any]]:
    with state.db.read() as conn:
        require_member(conn, who, family)
        require_device(conn, family, device)
        rows = conn.execute(
            select(consents).where(consents.c.device_id == device).order_by(consents.c.id)
        ).all()
        return [consent.consent_view(r) for r in rows]


__all__ = ["accounts", "family_guardian_accounts", "memberships", "router"]
