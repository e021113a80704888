"""The device's side of the server: challenge log-in, sealed uploads, the queue and acks.

Journal uploads are idempotent ranges by seq (PROTOCOL.md §11). The server holds, per
device, a base (where its chain starts: 0, a signed purge anchor, or its own retention
purge), an acknowledged cursor (the highest seq a device-signed checkpoint vouches for) and
pending records beyond it (chain-checked, not yet vouched for). Every upload is checked
with `protocol.journal.check_range` before anything is stored: a corrupt or forged upload
is refused with the first bad seq, and what is stored is exactly what the device signed.
"""

from __future__ import annotations

import os
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, and_, func, select

from dashboard import audit, consent
from dashboard.db.schema import (
    catalogues,
    challenges,
    checkpoints,
    child_requests,
    device_receipts,
    devices,
    messages,
    records,
    segments,
    summaries,
)
from dashboard.db.upsert import insert_ignore
from dashboard.errors import Problem, conflict, from_protocol
from dashboard.families import parse_entry
from dashboard.jsoncol import from_json, to_json
from protocol.encoding import dumps, unb64
from protocol.envelope import Body, Purpose, envelope_from_json, verify
from protocol.errors import ProtocolError
from protocol.journal import Anchor, ChainError, Checkpoint, WireRecord, check_range, verify_anchor
from protocol.messages import Ack, Payload, Receipt, parse_payload
from protocol.sealing import Sealed, catalogue_ctx, request_ctx, sealed_from_json, summary_ctx
from protocol.server import LOGIN_NONCE_BYTES, device_login_message

CHALLENGE_TTL = 60
MAX_PENDING = 20_000
QUEUE_PAGE = 100


def lock_device(conn: Connection, device_id: str) -> Any:
    return conn.execute(select(devices).where(devices.c.id == device_id).with_for_update()).one()


def sign_key(row: Any) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes(row.sign_pub))


# ---------------------------------------------------------------------- log-in


def challenge(conn: Connection, device_id: str, now: int) -> bytes:
    nonce = os.urandom(LOGIN_NONCE_BYTES)
    known = conn.execute(select(devices.c.status).where(devices.c.id == device_id)).first()
    conn.execute(challenges.delete().where(challenges.c.expires_at <= now))
    if known is not None and known.status != "removed":
        conn.execute(
            challenges.insert().values(nonce=nonce, device_id=device_id, expires_at=now + CHALLENGE_TTL)
        )
    return nonce  # an unknown device gets a nonce too: it will never verify


def check_login(
    conn: Connection, device_id: str, nonce_b64: str, signature_b64: str, origin: str, now: int
) -> bool:
    """Whether the signature answers a live challenge of this device for this origin. The
    challenge is used up either way (the caller commits that even when it refuses)."""
    nonce = unb64(nonce_b64, "body.nonce", LOGIN_NONCE_BYTES)
    signature = unb64(signature_b64, "body.signature", 64)
    row = conn.execute(select(challenges).where(challenges.c.nonce == nonce)).first()
    if row is not None:
        conn.execute(challenges.delete().where(challenges.c.nonce == nonce))  # single use
    if row is None or row.device_id != device_id or row.expires_at <= now:
        return False
    dev = conn.execute(select(devices).where(devices.c.id == device_id)).first()
    if dev is None or dev.status == "removed":
        return False
    try:
        sign_key(dev).verify(signature, device_login_message(origin, nonce, device_id))
    except InvalidSignature:
        return False
    return True


def touch(conn: Connection, device_id: str, now: int) -> None:
    conn.execute(devices.update().where(devices.c.id == device_id).values(last_contact=now))


# ---------------------------------------------------------------------- journal


def _bytes(value: str, field: str, size: int | None = None) -> bytes:
    try:
        return unb64(value, field, size)
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc


def cursor_view(row: Any) -> dict[str, Any]:
    return {
        "epoch": row.epoch,
        "cursor": row.cursor,
        "pending": row.pending_seq,
        "next_seq": row.pending_seq + 1,
        "base_seq": row.base_seq,
    }


def _require_reports(conn: Connection, device_id: str) -> None:
    if not consent.effective(conn, device_id).usage_reports:
        raise Problem(
            403,
            "no-consent",
            "the guardians have not agreed to usage reports (or a material "
            "change of the notice awaits their answer): keep the data on the device",
        )


def upload_journal(conn: Connection, device_id: str, body: Any, now: int) -> dict[str, Any]:
    dev = lock_device(conn, device_id)
    _require_reports(conn, device_id)
    key = sign_key(dev)
    updates: dict[str, Any] = {"last_contact": now}
    cursor, cursor_hash, pending, base_seq, base_hash = (
        dev.cursor,
        bytes(dev.cursor_hash),
        dev.pending_seq,
        dev.base_seq,
        bytes(dev.base_hash),
    )
    epoch = dev.epoch
    if body.epoch == dev.epoch and body.acked is not None and body.acked > cursor:
        # the device heard a higher cursor under this epoch than we hold: we were restored from
        # a backup. A new epoch makes the device resend from its oldest record.
        epoch = os.urandom(16).hex()
        conn.execute(records.delete().where(records.c.device_id == device_id, records.c.seq > cursor))
        pending = cursor
        updates |= {"epoch": epoch}
    if body.anchor is not None and body.anchor.seq > pending:
        anchor = Anchor(
            body.anchor.seq,
            _bytes(body.anchor.head, "body.anchor.head", 32),
            _bytes(body.anchor.signature, "body.anchor.signature", 64),
        )
        try:
            verify_anchor(anchor, key, "body.anchor")
        except ChainError as exc:
            raise _chain_problem(exc) from exc
        conn.execute(records.delete().where(records.c.device_id == device_id, records.c.seq > cursor))
        if cursor == 0 and base_seq == 0:
            base_seq, base_hash = anchor.seq, anchor.head
        cursor, cursor_hash, pending = anchor.seq, anchor.head, anchor.seq
    wire = [r for r in body.records if r.seq > cursor]
    if wire and wire[0].seq > pending + 1:
        raise conflict(
            "gap",
            f"the server holds records up to {pending}; send from {pending + 1}",
            "body.records[0].seq",
            next_seq=pending + 1,
        )
    held: list[WireRecord] = []
    if pending > cursor:
        held = [
            WireRecord(r.seq, r.segment, bytes(r.nonce), bytes(r.ciphertext))
            for r in conn.execute(
                select(records.c.seq, records.c.segment, records.c.nonce, records.c.ciphertext)
                .where(records.c.device_id == device_id, records.c.seq > cursor)
                .order_by(records.c.seq)
            ).all()
        ]
    incoming = [
        WireRecord(
            r.seq,
            r.segment,
            _bytes(r.nonce, f"body.records[{i}].nonce", 12),
            _bytes(r.ciphertext, f"body.records[{i}].ciphertext"),
        )
        for i, r in enumerate(wire)
    ]
    # keep the held pending records that the upload repeats unchanged; drop them from the
    # first that differs (unacknowledged: the device is the authority on them)
    keep = [h for h in held if h.seq < (incoming[0].seq if incoming else pending + 1)]
    for h, r in zip(held[len(keep) :], incoming, strict=False):
        if h != r:
            break
        keep.append(h)
    fresh = [r for r in incoming if r.seq > (keep[-1].seq if keep else cursor)]
    if len(keep) + len(fresh) > MAX_PENDING:
        raise conflict(
            "too-much-pending",
            f"more than {MAX_PENDING} records with no checkpoint: send one",
            "body.checkpoints",
        )
    cps = [
        Checkpoint(
            c.seq,
            _bytes(c.head, f"body.checkpoints[{i}].head", 32),
            c.at,
            _bytes(c.signature, f"body.checkpoints[{i}].signature", 64),
        )
        for i, c in enumerate(body.checkpoints)
    ]
    chain = keep + fresh
    try:
        result = check_range(cursor, cursor_hash, chain, cps, key, "body.records", "body.checkpoints")
    except ChainError as exc:
        index = {r.seq: i for i, r in enumerate(body.records)}  # name the request's own index
        raise _chain_problem(exc, [index.get(r.seq) for r in chain]) from exc
    known = {
        r.uid for r in conn.execute(select(segments.c.uid).where(segments.c.device_id == device_id)).all()
    }
    offered = {s.uid: s for s in body.segments}
    for i, r in enumerate(fresh):
        if r.segment not in known and r.segment not in offered:
            raise Problem(
                422,
                "invalid",
                f"record {r.seq}: segment {r.segment} has no keys (send them in segments)",
                field=f"body.records[{i}].segment",
                extra={"first_bad_seq": r.seq},
            )
    for uid, seg in offered.items():
        keys = to_json([k.model_dump() for k in seg.keys])
        if uid in known:
            conn.execute(
                segments.update()
                .where(segments.c.device_id == device_id, segments.c.uid == uid)
                .values(keys=keys)
            )
        else:
            conn.execute(segments.insert().values(device_id=device_id, uid=uid, keys=keys, received_at=now))
    if fresh:
        if fresh[0].seq <= pending:  # replaces pending records that differ
            conn.execute(
                records.delete().where(records.c.device_id == device_id, records.c.seq >= fresh[0].seq)
            )
        offset = len(keep)
        conn.execute(
            records.insert(),
            [
                {
                    "device_id": device_id,
                    "seq": r.seq,
                    "segment": r.segment,
                    "nonce": r.nonce,
                    "ciphertext": r.ciphertext,
                    "hash": result.hashes[offset + i],
                    "received_at": now,
                }
                for i, r in enumerate(fresh)
            ],
        )
    # only checkpoints up to the cursor are stored, so every one beyond the old cursor is new
    new_cps = [c for c in cps if cursor < c.seq <= result.verified]
    if new_cps:  # (a restore from backup may hold some already: never a duplicate-key failure)
        insert_ignore(
            conn,
            checkpoints,
            [
                {"device_id": device_id, "seq": c.seq, "head": c.head, "at": c.at, "signature": c.signature}
                for c in new_cps
            ],
        )
    new_pending = chain[-1].seq if chain else cursor
    new_cursor = result.verified
    new_cursor_hash = result.hashes[new_cursor - cursor - 1] if new_cursor > cursor else cursor_hash
    updates |= {
        "cursor": new_cursor,
        "cursor_hash": new_cursor_hash,
        "pending_seq": new_pending,
        "base_seq": base_seq,
        "base_hash": base_hash,
        "reported_head": max(int(body.head), new_pending),
    }
    conn.execute(devices.update().where(devices.c.id == device_id).values(**updates))
    return {
        "epoch": epoch,
        "cursor": new_cursor,
        "pending": new_pending,
        "next_seq": new_pending + 1,
        "base_seq": base_seq,
    }


def _chain_problem(exc: ChainError, positions: list[int | None] | None = None) -> Problem:
    """`positions[i]`: the index in the request of the i-th record checked (None: held)."""
    field = exc.where
    match = re.fullmatch(r"body\.records\[(\d+)\](.*)", field)
    if match is not None and positions is not None:
        at = positions[int(match.group(1))] if int(match.group(1)) < len(positions) else None
        field = "body.records" if at is None else f"body.records[{at}]{match.group(2)}"
    return Problem(422, "bad-chain", str(exc), field=field, extra={"first_bad_seq": exc.seq})


# ---------------------------------------------------------------------- sealed uploads


def parse_sealed(value: dict[str, Any], field: str, want_ctx: str) -> Sealed:
    try:
        sealed = sealed_from_json(value, field)
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc
    if sealed.ctx != want_ctx:
        raise Problem(
            422, "invalid", f"sealed for {sealed.ctx!r}, expected {want_ctx!r}", field=f"{field}.ctx"
        )
    return sealed


def store_summary(conn: Connection, device: Any, day: str, value: dict[str, Any], now: int) -> None:
    lock_device(conn, device.id)  # orders concurrent uploads of one device (select, then insert)
    _require_reports(conn, device.id)
    sealed = parse_sealed(value, "body.sealed", summary_ctx(device.family_id, device.id, day))
    text = dumps(sealed.to_json()).decode()
    exists = conn.execute(
        select(summaries.c.day).where(summaries.c.device_id == device.id, summaries.c.day == day)
    ).first()
    if exists is None:
        conn.execute(summaries.insert().values(device_id=device.id, day=day, sealed=text, received_at=now))
    else:
        conn.execute(
            summaries.update()
            .where(summaries.c.device_id == device.id, summaries.c.day == day)
            .values(sealed=text, received_at=now)
        )


def store_request(
    conn: Connection, device: Any, request_id: str, kind: str, value: dict[str, Any], now: int
) -> bool:
    """True if new (the guardians are to be told), False if the device repeated it."""
    lock_device(conn, device.id)
    sealed = parse_sealed(value, "body.sealed", request_ctx(device.family_id, device.id, request_id))
    text = dumps(sealed.to_json()).decode()
    held = conn.execute(
        select(child_requests).where(
            child_requests.c.device_id == device.id, child_requests.c.id == request_id
        )
    ).first()
    if held is not None:
        if held.sealed != text or held.kind != kind:
            raise conflict("id-taken", "another request has this id", "body.id")
        return False
    conn.execute(
        child_requests.insert().values(
            device_id=device.id, id=request_id, kind=kind, sealed=text, received_at=now
        )
    )
    audit.emit(
        conn,
        family=device.family_id,
        device=device.id,
        kind="request",
        data={"id": request_id, "kind": kind},
        now=now,
    )
    return True


def store_catalogue(conn: Connection, device: Any, value: dict[str, Any], now: int) -> None:
    lock_device(conn, device.id)
    sealed = parse_sealed(value, "body.sealed", catalogue_ctx(device.family_id, device.id))
    text = dumps(sealed.to_json()).decode()
    if (
        conn.execute(select(catalogues.c.device_id).where(catalogues.c.device_id == device.id)).first()
        is None
    ):
        conn.execute(catalogues.insert().values(device_id=device.id, sealed=text, received_at=now))
    else:
        conn.execute(
            catalogues.update()
            .where(catalogues.c.device_id == device.id)
            .values(sealed=text, received_at=now)
        )


def verify_device_message(device: Any, value: dict[str, Any], field: str) -> tuple[Body, Payload]:
    envelope = parse_entry(value, field)
    if envelope.kid != device.id:
        raise Problem(422, "invalid", "signed by another device", field=f"{field}.kid")
    try:
        body = verify(envelope, sign_key(device), Purpose.DEVICE, field)
        payload = parse_payload(body, f"{field}.body.payload")
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc
    if body.family != device.family_id or body.device != device.id:
        raise Problem(422, "invalid", "not from this device of this family", field=f"{field}.body")
    return body, payload


def store_acks(
    conn: Connection, device: Any, values: list[dict[str, Any]], now: int
) -> tuple[list[dict[str, str]], bool]:
    """Record each signed ack; returns the results and whether the device is now gone (it
    acknowledged the server's unpair receipt)."""
    results = []
    gone = False
    dev = lock_device(conn, device.id)
    for i, value in enumerate(values):
        body, payload = verify_device_message(dev, value, f"body.acks[{i}]")
        if not isinstance(payload, Ack):
            raise Problem(
                422, "invalid", f"a {body.type.value} is not an ack", field=f"body.acks[{i}].body.type"
            )
        msg = conn.execute(
            select(messages).where(messages.c.device_id == dev.id, messages.c.id == payload.message)
        ).first()
        if msg is None:
            results.append({"message": payload.message, "status": "unknown"})
            continue
        status = payload.result.value
        conn.execute(
            messages.update()
            .where(messages.c.device_id == dev.id, messages.c.id == msg.id)
            .values(status=status, ack=dumps(envelope_from_json(value).to_json()).decode(), acked_at=now)
        )
        if msg.type == "policy" and status == "applied" and payload.policy_version > dev.applied_seq:
            conn.execute(
                devices.update()
                .where(devices.c.id == dev.id)
                .values(
                    applied_seq=payload.policy_version, applied_at=payload.applied_at, applied_by=msg.sender
                )
            )
        audit.emit(
            conn,
            family=dev.family_id,
            device=dev.id,
            kind="ack",
            data={"message": msg.id, "type": msg.type, "status": status},
            now=now,
        )
        results.append({"message": msg.id, "status": status})
        if msg.type == "server_receipt" and dev.status == "unpairing":
            gone = True
    touch(conn, dev.id, now)
    if gone:
        conn.execute(devices.delete().where(devices.c.id == dev.id))
    return results, gone


def store_receipt(conn: Connection, device: Any, value: dict[str, Any], now: int) -> str:
    lock_device(conn, device.id)
    body, payload = verify_device_message(device, value, "body.envelope")
    if not isinstance(payload, Receipt):
        raise Problem(
            422, "invalid", f"a {body.type.value} is not a receipt", field="body.envelope.body.type"
        )
    held = conn.execute(
        select(device_receipts.c.id).where(
            device_receipts.c.device_id == device.id, device_receipts.c.id == body.id
        )
    ).first()
    if held is None:
        conn.execute(
            device_receipts.insert().values(
                device_id=device.id,
                id=body.id,
                envelope=dumps(envelope_from_json(value).to_json()).decode(),
                received_at=now,
            )
        )
        audit.emit(
            conn,
            family=device.family_id,
            device=device.id,
            kind="receipt",
            data={"id": body.id, "decision": payload.decision, "records": payload.records},
            now=now,
        )
    return body.id


# ---------------------------------------------------------------------- queue


def queue_items(conn: Connection, device_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(messages)
        .where(and_(messages.c.device_id == device_id, messages.c.status == "queued"))
        .order_by(messages.c.n)
        .limit(QUEUE_PAGE)
    ).all()
    out = []
    for r in rows:
        item: dict[str, Any] = {"id": r.id, "n": r.n, "type": r.type, "seq": r.seq, "queued_at": r.queued_at}
        content = from_json(r.content)
        item[{"keyring": "entry", "server_receipt": "receipt"}.get(r.type, "sealed")] = content
        out.append(item)
    return out


def queue_depth(conn: Connection, device_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(messages)
            .where(messages.c.device_id == device_id, messages.c.status.in_(("queued", "sent")))
        ).scalar()
        or 0
    )
