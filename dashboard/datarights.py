"""A child's data on the server: reading it (every read audited), what is held, export,
deletion, unpairing, and the retention purge by the policy's retention period.

Deletion and unpairing answer with a deletion receipt signed by the server's own key
(`protocol.server`), queued for the device: the guardian's app and the device can both
check that the server said so. The operator's admin commands reach this module only
through counts and purges: no path here returns anything but ciphertext.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import Connection, func, select

from dashboard import audit, consent
from dashboard.db.schema import (
    catalogues,
    challenges,
    checkpoints,
    child_requests,
    consents,
    device_receipts,
    devices,
    events,
    messages,
    pairings,
    records,
    segments,
    sessions,
    summaries,
)
from dashboard.deliveries import deliveries
from dashboard.errors import Problem
from dashboard.families import next_queue_n
from dashboard.jsoncol import from_json, to_json
from dashboard.sync import lock_device
from protocol.encoding import b64
from protocol.server import ServerReceipt, sign_receipt

DAY = 86_400
JOURNAL_PAGE = 1000
EVENT_DAYS = 30  # how long the event feed keeps an event (apps catch up within that)


def journal_page(conn: Connection, dev: Any, after: int, limit: int) -> dict[str, Any]:
    rows = conn.execute(
        select(records)
        .where(records.c.device_id == dev.id, records.c.seq > after, records.c.seq <= dev.cursor)
        .order_by(records.c.seq)
        .limit(limit)
    ).all()
    uids = sorted({r.segment for r in rows})
    segs = (
        conn.execute(select(segments).where(segments.c.device_id == dev.id, segments.c.uid.in_(uids))).all()
        if uids
        else []
    )
    last = rows[-1].seq if rows else after
    cps = (
        conn.execute(
            select(checkpoints)
            .where(checkpoints.c.device_id == dev.id, checkpoints.c.seq > after, checkpoints.c.seq <= last)
            .order_by(checkpoints.c.seq)
        ).all()
        if rows
        else []
    )
    return {
        "device": dev.id,
        "base_seq": dev.base_seq,
        "base_hash": b64(bytes(dev.base_hash)),
        "cursor": dev.cursor,
        "segments": [{"uid": s.uid, "keys": from_json(s.keys)} for s in segs],
        "records": [
            {
                "seq": r.seq,
                "segment": r.segment,
                "nonce": b64(bytes(r.nonce)),
                "ciphertext": b64(bytes(r.ciphertext)),
            }
            for r in rows
        ],
        "checkpoints": [
            {"seq": c.seq, "head": b64(bytes(c.head)), "at": c.at, "signature": b64(bytes(c.signature))}
            for c in cps
        ],
        "next_after": last if len(rows) == limit and last < dev.cursor else None,
    }


def summaries_of(
    conn: Connection, device_id: str, start: str | None, end: str | None
) -> list[dict[str, Any]]:
    query = select(summaries).where(summaries.c.device_id == device_id)
    if start is not None:
        query = query.where(summaries.c.day >= start)
    if end is not None:
        query = query.where(summaries.c.day <= end)
    return [
        {"day": r.day, "sealed": from_json(r.sealed), "received_at": r.received_at}
        for r in conn.execute(query.order_by(summaries.c.day).limit(400)).all()
    ]


def requests_of(conn: Connection, device_id: str, status: str | None) -> list[dict[str, Any]]:
    query = select(child_requests).where(child_requests.c.device_id == device_id)
    if status == "open":
        query = query.where(child_requests.c.handled_at.is_(None))
    elif status == "handled":
        query = query.where(child_requests.c.handled_at.is_not(None))
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "sealed": from_json(r.sealed),
            "received_at": r.received_at,
            "handled_at": r.handled_at,
            "handled_by": r.handled_by,
        }
        for r in conn.execute(query.order_by(child_requests.c.received_at.desc()).limit(500)).all()
    ]


def catalogue_of(conn: Connection, device_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(catalogues).where(catalogues.c.device_id == device_id)).first()
    return None if row is None else {"sealed": from_json(row.sealed), "received_at": row.received_at}


def receipts_of(conn: Connection, device_id: str) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "envelope": from_json(r.envelope), "received_at": r.received_at}
        for r in conn.execute(
            select(device_receipts)
            .where(device_receipts.c.device_id == device_id)
            .order_by(device_receipts.c.received_at)
        ).all()
    ]


def mark_handled(conn: Connection, device_id: str, request_id: str, kid: str, now: int) -> None:
    row = conn.execute(
        select(child_requests.c.handled_at).where(
            child_requests.c.device_id == device_id, child_requests.c.id == request_id
        )
    ).first()
    if row is None:
        raise Problem(404, "not-found", "no such request", field="path.request")
    if row.handled_at is None:
        conn.execute(
            child_requests.update()
            .where(child_requests.c.device_id == device_id, child_requests.c.id == request_id)
            .values(handled_at=now, handled_by=kid)
        )


def _count(conn: Connection, table: Any, device_id: str) -> int:
    return int(
        conn.execute(select(func.count()).select_from(table).where(table.c.device_id == device_id)).scalar()
        or 0
    )


def holdings(conn: Connection, device_id: str) -> dict[str, int]:
    return {
        "journal_records": _count(conn, records, device_id),
        "journal_segments": _count(conn, segments, device_id),
        "journal_checkpoints": _count(conn, checkpoints, device_id),
        "summaries": _count(conn, summaries, device_id),
        "requests": _count(conn, child_requests, device_id),
        "catalogue": _count(conn, catalogues, device_id),
        "messages": _count(conn, messages, device_id),
        "receipts": _count(conn, device_receipts, device_id),
        "consents": _count(conn, consents, device_id),
    }


def export(conn: Connection, dev: Any, now: int) -> dict[str, Any]:
    return {
        "device": dev.id,
        "exported_at": now,
        "journal": journal_page(conn, dev, dev.base_seq, 10**9),
        "summaries": summaries_of(conn, dev.id, None, None),
        "requests": requests_of(conn, dev.id, None),
        "catalogue": catalogue_of(conn, dev.id),
        "messages": deliveries(conn, dev.id, 10**6, None),
        "receipts": receipts_of(conn, dev.id),
        "consents": [
            consent.consent_view(r)
            for r in conn.execute(
                select(consents).where(consents.c.device_id == dev.id).order_by(consents.c.id)
            ).all()
        ],
    }


def _delete_child_data(conn: Connection, dev: Any) -> dict[str, int]:
    deleted = {
        "journal_records": _count(conn, records, dev.id),
        "summaries": _count(conn, summaries, dev.id),
        "requests": _count(conn, child_requests, dev.id),
        "catalogue": _count(conn, catalogues, dev.id),
    }
    for table in (records, checkpoints, segments, summaries, child_requests, catalogues):
        conn.execute(table.delete().where(table.c.device_id == dev.id))
    # the chain continues on the device after its own deletion: start from the acknowledged head
    conn.execute(
        devices.update()
        .where(devices.c.id == dev.id)
        .values(base_seq=dev.cursor, base_hash=dev.cursor_hash, pending_seq=dev.cursor)
    )
    return deleted


def _queue_receipt(
    conn: Connection,
    dev: Any,
    scope: str,
    decision: str | None,
    deleted: dict[str, int],
    signing_key: Any,
    now: int,
) -> str:
    receipt_id = os.urandom(16).hex()
    signed = sign_receipt(
        ServerReceipt(receipt_id, dev.family_id, dev.id, scope, decision, now, deleted), signing_key
    )
    conn.execute(
        messages.insert().values(
            device_id=dev.id,
            id=receipt_id,
            n=next_queue_n(conn, dev.id),
            type="server_receipt",
            seq=0,
            content=to_json(signed),
            queued_at=now,
            status="queued",
        )
    )
    return receipt_id


def delete_data(
    conn: Connection, dev_id: str, who: Any, decision: str | None, signing_key: Any, now: int
) -> tuple[str, dict[str, int]]:
    return _delete(conn, dev_id, who, decision, signing_key, now, unpairing=False)


def unpair(
    conn: Connection, dev_id: str, who: Any, decision: str | None, signing_key: Any, now: int
) -> tuple[str, dict[str, int]]:
    """Delete the child's data now; the device reads its queue (the guardian's signed
    `unpair` decision, then this receipt) until it acknowledges the receipt, and is then
    forgotten with everything else of it."""
    return _delete(conn, dev_id, who, decision, signing_key, now, unpairing=True)


def _delete(
    conn: Connection,
    dev_id: str,
    who: Any,
    decision: str | None,
    signing_key: Any,
    now: int,
    *,
    unpairing: bool,
) -> tuple[str, dict[str, int]]:
    dev = lock_device(conn, dev_id)
    if unpairing and dev.status == "unpairing":
        raise Problem(409, "unpairing", "the device is being unpaired already")
    deleted = _delete_child_data(conn, dev)
    if unpairing:
        history = (messages.c.device_id == dev.id) & (messages.c.status != "queued")
        deleted["messages"] = int(
            conn.execute(select(func.count()).select_from(messages).where(history)).scalar() or 0
        )
        conn.execute(messages.delete().where(history))
        conn.execute(device_receipts.delete().where(device_receipts.c.device_id == dev.id))
        conn.execute(devices.update().where(devices.c.id == dev.id).values(status="unpairing"))
        audit.emit(
            conn, family=dev.family_id, device=dev.id, kind="device", data={"status": "unpairing"}, now=now
        )
    scope, action = ("unpair", "unpair") if unpairing else ("data", "delete")
    receipt = _queue_receipt(conn, dev, scope, decision, deleted, signing_key, now)
    audit.record(
        conn,
        family=dev.family_id,
        device=dev.id,
        account_id=who.account_id,
        kid=who.kid,
        action=action,
        detail=deleted | {"receipt": receipt},
        now=now,
    )
    return receipt, deleted


def purge_expired(conn: Connection, now: int) -> dict[str, int]:
    """Retention: delete what is older than each device's policy retention period (journal
    records already acknowledged, summaries by day, handled requests)."""
    purged = {"journal_records": 0, "summaries": 0, "requests": 0}
    for dev in conn.execute(select(devices).where(devices.c.status == "active")).all():
        cutoff = now - dev.retention_days * DAY
        last = conn.execute(
            select(func.max(records.c.seq)).where(
                records.c.device_id == dev.id, records.c.received_at < cutoff, records.c.seq <= dev.cursor
            )
        ).scalar()
        if last is not None:
            head = conn.execute(
                select(records.c.hash).where(records.c.device_id == dev.id, records.c.seq == last)
            ).scalar_one()
            n = conn.execute(
                records.delete().where(records.c.device_id == dev.id, records.c.seq <= last)
            ).rowcount
            conn.execute(
                checkpoints.delete().where(checkpoints.c.device_id == dev.id, checkpoints.c.seq <= last)
            )
            conn.execute(devices.update().where(devices.c.id == dev.id).values(base_seq=last, base_hash=head))
            purged["journal_records"] += int(n or 0)
        day = _day(cutoff)
        purged["summaries"] += int(
            conn.execute(
                summaries.delete().where(summaries.c.device_id == dev.id, summaries.c.day < day)
            ).rowcount
            or 0
        )
        purged["requests"] += int(
            conn.execute(
                child_requests.delete().where(
                    child_requests.c.device_id == dev.id,
                    child_requests.c.handled_at.is_not(None),
                    child_requests.c.received_at < cutoff,
                )
            ).rowcount
            or 0
        )
        live = {
            r.segment
            for r in conn.execute(
                select(records.c.segment).where(records.c.device_id == dev.id).distinct()
            ).all()
        }
        for seg in conn.execute(select(segments.c.uid).where(segments.c.device_id == dev.id)).all():
            if seg.uid not in live:
                conn.execute(
                    segments.delete().where(segments.c.device_id == dev.id, segments.c.uid == seg.uid)
                )
    # housekeeping: the event feed (cleartext metadata only) and finished sessions and pairings
    purged["events"] = int(
        conn.execute(events.delete().where(events.c.at < now - EVENT_DAYS * DAY)).rowcount or 0
    )
    purged["pairings"] = int(
        conn.execute(pairings.delete().where(pairings.c.expires_at < now - DAY)).rowcount or 0
    )
    purged["sessions"] = int(conn.execute(sessions.delete().where(sessions.c.expires_at < now)).rowcount or 0)
    conn.execute(challenges.delete().where(challenges.c.expires_at < now))
    return purged


def _day(t: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))
