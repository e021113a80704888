"""The guardians' side of a device's queue: posting a sealed policy or decision, and the
delivery status the device's signed acks make visible ("rule v7 applied at 14:02").

The server cannot read what it queues, so it checks what it can: the blob is sealed for
this family, device and message id (its context says so), to this device's key; the
poster is an active guardian of the family; and a policy's version is above every version
queued before, so two guardians editing at once find out (409) instead of one silently
overwriting the other. The device is the last judge (PROTOCOL.md §3 acceptance).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dashboard.db.schema import devices, messages
from dashboard.errors import Problem, conflict
from dashboard.families import next_queue_n
from dashboard.jsoncol import from_json
from dashboard.sync import lock_device, parse_sealed
from protocol.encoding import dumps
from protocol.sealing import guardian_message_ctx


def post(conn: Connection, family_id: str, device_id: str, body: Any, sender_kid: str, now: int) -> None:
    dev = lock_device(conn, device_id)
    if dev.status != "active":
        raise conflict("not-active", f"the device is {dev.status}", "path.device")
    sealed = parse_sealed(
        body.sealed.model_dump(), "body.sealed", guardian_message_ctx(family_id, device_id, body.id)
    )
    if bytes(dev.seal_pub).hex() not in sealed.recipients:
        raise Problem(422, "invalid", "not sealed to this device's key", field="body.sealed.wraps")
    if (
        conn.execute(
            select(messages.c.id).where(messages.c.device_id == device_id, messages.c.id == body.id)
        ).first()
        is not None
    ):
        raise conflict("id-taken", "a message with this id is queued already", "body.id")
    retention = None
    if body.type == "policy":
        if body.seq <= dev.policy_seq:
            raise conflict(
                "stale-policy",
                f"policy version {body.seq} is not above version {dev.policy_seq}, "
                "the latest queued (another guardian may have just sent one): load it and edit "
                "again",
                "body.seq",
                latest_seq=dev.policy_seq,
            )
        if body.retention_days is None:
            raise Problem(
                422,
                "invalid",
                "a policy carries its retention_days in clear (for the server's purge)",
                field="body.retention_days",
            )
        retention = body.retention_days
        conn.execute(
            devices.update()
            .where(devices.c.id == device_id)
            .values(policy_seq=body.seq, retention_days=retention)
        )
    elif body.seq != 0:
        raise Problem(422, "invalid", f"a {body.type} has seq 0", field="body.seq")
    conn.execute(
        messages.insert().values(
            device_id=device_id,
            id=body.id,
            n=next_queue_n(conn, device_id),
            type=body.type,
            seq=body.seq,
            content=dumps(sealed.to_json()).decode(),
            retention_days=retention,
            sender=sender_kid,
            queued_at=now,
            status="queued",
        )
    )


def delivery_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "seq": row.seq,
        "sender": row.sender,
        "queued_at": row.queued_at,
        "status": "queued" if row.status == "sent" else row.status,
        "acked_at": row.acked_at,
        "ack": from_json(row.ack),
        "sealed": from_json(row.content),
    }


def deliveries(conn: Connection, device_id: str, limit: int, before: int | None) -> list[dict[str, Any]]:
    query = select(messages).where(
        messages.c.device_id == device_id, messages.c.type.in_(("policy", "decision", "consent"))
    )
    if before is not None:
        query = query.where(messages.c.n < before)
    return [delivery_view(r) for r in conn.execute(query.order_by(messages.c.n.desc()).limit(limit)).all()]


def one(conn: Connection, device_id: str, message_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(messages).where(messages.c.device_id == device_id, messages.c.id == message_id)
    ).first()
    if row is None or row.type not in ("policy", "decision", "consent"):
        raise Problem(404, "not-found", "no such message for this device", field="path.message")
    return delivery_view(row)
