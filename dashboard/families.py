"""Families: the keyring as the server stores and relays it, the memberships derived from
it, invitations for a second guardian, and each device's status.

The server verifies every entry with `protocol.keyring` before storing it (so it never
stores garbage), but it can never make one: an entry is signed by a guardian already
active in the chain. Memberships (which accounts may read a family) follow the keyring:
`add_guardian` of an invited account's keys admits it, `remove_guardian` revokes it.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Connection, func, select

from dashboard import audit
from dashboard.db.schema import (
    accounts,
    devices,
    families,
    invitations,
    keyring_entries,
    memberships,
    messages,
)
from dashboard.errors import Problem, conflict, from_protocol
from dashboard.jsoncol import to_json
from dashboard.security import tokens
from protocol.encoding import dumps, loads
from protocol.envelope import Envelope, envelope_from_json, parse_body
from protocol.errors import ProtocolError
from protocol.keyring import Keyring, Op, entry_hash, parse_change


def stored_entries(conn: Connection, family_id: str, after: int = -1) -> list[Envelope]:
    rows = conn.execute(
        select(keyring_entries.c.envelope)
        .where(keyring_entries.c.family_id == family_id, keyring_entries.c.seq > after)
        .order_by(keyring_entries.c.seq)
    ).all()
    return [envelope_from_json(loads(r.envelope.encode(), "stored", 400_000)) for r in rows]


def load_keyring(conn: Connection, family_id: str) -> Keyring:
    return Keyring.from_entries(stored_entries(conn, family_id), "stored keyring")


def parse_entry(value: dict[str, Any], field: str) -> Envelope:
    try:
        return envelope_from_json(value, field)
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc


def lock_family(conn: Connection, family_id: str) -> Any:
    row = conn.execute(select(families).where(families.c.id == family_id).with_for_update()).first()
    if row is None:
        raise Problem(404, "not-found", "no such family", field="path.family")
    return row


def store_entry(conn: Connection, family_id: str, entry: Envelope, now: int) -> None:
    body = parse_body(entry.body_bytes)
    conn.execute(
        keyring_entries.insert().values(
            family_id=family_id,
            seq=body.seq,
            hash=entry_hash(entry),
            envelope=dumps(entry.to_json()).decode(),
            added_at=now,
        )
    )
    conn.execute(
        families.update()
        .where(families.c.id == family_id)
        .values(head_seq=body.seq, head_hash=entry_hash(entry))
    )


def next_queue_n(conn: Connection, device_id: str) -> int:
    top = conn.execute(select(func.max(messages.c.n)).where(messages.c.device_id == device_id)).scalar()
    return 1 if top is None else int(top) + 1


def queue_entry(conn: Connection, device_id: str, entry: Envelope, now: int, sender: str) -> None:
    body = parse_body(entry.body_bytes)
    conn.execute(
        messages.insert().values(
            device_id=device_id,
            id=body.id,
            n=next_queue_n(conn, device_id),
            type="keyring",
            seq=body.seq,
            content=dumps(entry.to_json()).decode(),
            sender=sender,
            queued_at=now,
            status="queued",
        )
    )


def append_entry(
    conn: Connection, family_id: str, value: dict[str, Any], who_kid: str, now: int, field: str = "body.entry"
) -> tuple[Keyring, list[str]]:
    """Verify that the entry extends the stored chain, store it, apply what it says to the
    memberships and devices, and queue it for the family's devices. Returns the new keyring
    and the device ids to wake."""
    entry = parse_entry(value, field)
    family = lock_family(conn, family_id)
    ring = load_keyring(conn, family_id)
    try:
        body = parse_body(entry.body_bytes, f"{field}.body")
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc
    if body.seq <= family.head_seq:
        raise conflict(
            "stale-keyring",
            f"entry {body.seq} exists already; the head is {family.head_seq}: "
            "fetch the keyring and sign again",
            f"{field}.body.seq",
            head_seq=family.head_seq,
        )
    if entry.kid != who_kid:
        raise Problem(
            403,
            "not-your-key",
            "an entry you post must be signed with your account's key",
            field=f"{field}.kid",
        )
    try:
        new = ring.extend(entry, field)
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc
    change = parse_change(body.payload, f"{field}.body.payload")
    if change.op is Op.ADD_DEVICE:
        raise Problem(
            422,
            "pair-devices",
            "devices join a family through pairing (/api/v1/pairing)",
            field=f"{field}.body.payload.op",
        )
    if change.op is Op.ADD_GUARDIAN:
        assert change.party is not None
        invite = conn.execute(
            select(invitations).where(
                invitations.c.family_id == family_id,
                invitations.c.status == "accepted",
                invitations.c.invitee_kid == change.party.id,
            )
        ).first()
        if invite is None:
            raise conflict(
                "not-invited",
                "no accepted invitation for these keys: the new guardian accepts an invitation first",
                f"{field}.body.payload.guardian.kid",
            )
        conn.execute(invitations.update().where(invitations.c.id == invite.id).values(status="admitted"))
        conn.execute(
            memberships.insert().values(
                family_id=family_id, account_id=invite.invitee_id, kid=change.party.id, since=now
            )
        )
    elif change.op is Op.REMOVE_GUARDIAN:
        conn.execute(
            memberships.delete().where(
                memberships.c.family_id == family_id, memberships.c.kid == change.target
            )
        )
    elif change.op is Op.REMOVE_DEVICE:
        # a device being unpaired keeps reading its queue until it acknowledges the unpair
        conn.execute(
            devices.update()
            .where(
                devices.c.id == change.target, devices.c.family_id == family_id, devices.c.status == "active"
            )
            .values(status="removed")
        )
    store_entry(conn, family_id, entry, now)
    woken = [
        r.id
        for r in conn.execute(
            select(devices.c.id).where(devices.c.family_id == family_id, devices.c.status != "removed")
        ).all()
    ]
    for device_id in woken:
        queue_entry(conn, device_id, entry, now, who_kid)
    audit.emit(
        conn,
        family=family_id,
        device=None,
        kind="keyring",
        data={"seq": body.seq, "op": change.op.value},
        now=now,
    )
    return new, woken


# ---------------------------------------------------------------------- invitations


def create_invitation(
    conn: Connection, family_id: str, account_id: int, now: int, ttl: int
) -> tuple[str, str]:
    token = tokens.new_secret()
    invite_id = os.urandom(16).hex()
    conn.execute(
        invitations.insert().values(
            id=invite_id,
            family_id=family_id,
            token_hash=tokens.digest(token),
            created_by=account_id,
            created_at=now,
            expires_at=now + ttl,
            status="open",
        )
    )
    return invite_id, token


def accept_invitation(conn: Connection, token: str, account: Any, now: int) -> Any:
    row = conn.execute(
        select(invitations).where(invitations.c.token_hash == tokens.digest(token)).with_for_update()
    ).first()
    if row is None or row.status not in ("open", "accepted") or row.expires_at <= now:
        raise Problem(
            404,
            "not-found",
            "no open invitation with this token (used, revoked or expired)",
            field="body.token",
        )
    if row.status == "accepted" and row.invitee_id != account.id:
        raise Problem(
            404,
            "not-found",
            "no open invitation with this token (used, revoked or expired)",
            field="body.token",
        )
    member = conn.execute(
        select(memberships).where(
            memberships.c.family_id == row.family_id, memberships.c.account_id == account.id
        )
    ).first()
    if member is not None:
        raise conflict("already-member", "you are a guardian of this family already", "body.token")
    conn.execute(
        invitations.update()
        .where(invitations.c.id == row.id)
        .values(status="accepted", invitee_id=account.id, invitee_kid=account.kid)
    )
    audit.emit(
        conn,
        family=row.family_id,
        device=None,
        kind="invitation",
        data={"id": row.id, "status": "accepted", "kid": account.kid},
        now=now,
    )
    return conn.execute(select(invitations).where(invitations.c.id == row.id)).one()


def invitation_view(conn: Connection, row: Any, now: int) -> dict[str, Any]:
    status = row.status
    if status in ("open", "accepted") and row.expires_at <= now:
        status = "expired"
    invitee = None
    if row.invitee_id is not None:
        acc = conn.execute(select(accounts).where(accounts.c.id == row.invitee_id)).first()
        if acc is not None:
            invitee = {
                "kid": acc.kid,
                "sign": bytes(acc.sign_pub).hex(),
                "seal": bytes(acc.seal_pub).hex(),
                "label": acc.label,
            }
    return {
        "id": row.id,
        "family": row.family_id,
        "status": status,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "invitee": invitee,
    }


def memberships_of(conn: Connection, account_id: int) -> list[Any]:
    return list(
        conn.execute(
            select(memberships).where(memberships.c.account_id == account_id).order_by(memberships.c.since)
        ).all()
    )


def family_guardian_accounts(conn: Connection, family_id: str) -> list[int]:
    return [
        r.account_id
        for r in conn.execute(
            select(memberships.c.account_id).where(memberships.c.family_id == family_id)
        ).all()
    ]


__all__ = ["to_json"]
