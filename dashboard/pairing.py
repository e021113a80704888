"""The pairing rendezvous (PROTOCOL.md §7): the server relays offer, response, reveal and
complete between a device and a guardian, and checks each against the protocol so that
nothing malformed is relayed; it cannot make the two SAS agree (it never sees a nonce
before the side that chose it has committed).

States: offered -> claimed (a guardian typed the code) -> responded -> revealed ->
completed -> paired; or aborted / expired. The code is single use (claiming it ends its
use), valid `pairing_ttl` seconds, and wrong codes are limited per account and globally.
The family, its keyring and the device are written only when the device confirms with its
signed `paired` message, so an aborted pairing leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets as pysecrets
from typing import Any

from sqlalchemy import Connection, select

from dashboard import audit, consent
from dashboard.db.schema import consents, devices, families, memberships, messages, pairings
from dashboard.errors import Problem, conflict, from_protocol
from dashboard.families import load_keyring, lock_family, next_queue_n, parse_entry, queue_entry, store_entry
from dashboard.jsoncol import from_json, to_json
from dashboard.security import throttle, tokens
from protocol.encoding import dumps, loads
from protocol.envelope import Purpose, parse_body, verify
from protocol.errors import ProtocolError
from protocol.keyring import Keyring, entry_hash
from protocol.messages import Paired, parse_payload
from protocol.pairing import Complete, Offer, Response, Reveal, commitment
from protocol.sealing import guardian_message_ctx

FINAL = ("paired", "aborted")


def code_hash(code: str) -> bytes:
    return hashlib.sha256(b"minormode pairing code " + code.encode()).digest()


def create(conn: Connection, offer: Offer, now: int, ttl: int) -> tuple[str, str, str]:
    existing = conn.execute(select(devices.c.status).where(devices.c.id == offer.device_id)).first()
    if existing is not None and existing.status != "removed":
        raise conflict("already-paired", "this device is paired; unpair it first", "body.offer.device_id")
    for _ in range(20):
        code = f"{pysecrets.randbelow(10**8):08d}"
        clash = conn.execute(
            select(pairings.c.id).where(pairings.c.code_hash == code_hash(code), pairings.c.expires_at > now)
        ).first()
        if clash is None:
            break
    else:
        raise Problem(503, "busy", "no free pairing code; try again")
    session, secret = os.urandom(16).hex(), tokens.new_secret()
    conn.execute(
        pairings.insert().values(
            id=session,
            secret_hash=tokens.digest(secret),
            code_hash=code_hash(code),
            device_id=offer.device_id,
            commitment=offer.commitment,
            created_at=now,
            expires_at=now + ttl,
            state="offered",
        )
    )
    return session, secret, code


def state_of(row: Any, now: int) -> str:
    if row.state not in FINAL and row.expires_at <= now:
        return "expired"
    return str(row.state)


def load(conn: Connection, session: str, *, lock: bool = False) -> Any:
    query = select(pairings).where(pairings.c.id == session)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise Problem(404, "not-found", "no such pairing session", field="path.session")
    return row


def for_device(conn: Connection, session: str, secret: str) -> Any:
    row = conn.execute(select(pairings).where(pairings.c.id == session)).first()
    if row is None or not tokens.same(tokens.digest(secret), row.secret_hash):
        raise Problem(401, "bad-token", "not this pairing session's secret", field="header.authorization")
    return row


def for_guardian(conn: Connection, session: str, account_id: int, *, lock: bool = False) -> Any:
    row = load(conn, session, lock=lock)
    if row.account_id != account_id:
        raise Problem(404, "not-found", "no such pairing session", field="path.session")
    return row


def expect(row: Any, now: int, *states: str) -> None:
    current = state_of(row, now)
    if current == "expired":
        raise Problem(410, "expired", "the pairing session expired (10 minutes): start again on the tablet")
    if current not in states:
        raise conflict(
            "wrong-state", f"the pairing session is {current}, not {' or '.join(states)}", state=current
        )


def claim(conn: Connection, code: str, account: Any, now: int, per_account: int, global_limit: int) -> Any:
    account_key = throttle.key("pair-account", str(account.id))
    if throttle.used_in_window(conn, account_key, now, 60) >= per_account:
        raise Problem(429, "rate-limited", "too many wrong pairing codes; wait a minute", retry_after=60)
    if throttle.used_in_window(conn, "pair-global", now, 60) >= global_limit:
        raise Problem(
            429, "rate-limited", "too many pairing attempts on this server; wait a minute", retry_after=60
        )
    row = conn.execute(
        select(pairings)
        .where(
            pairings.c.code_hash == code_hash(code),
            pairings.c.expires_at > now,
            pairings.c.state == "offered",
        )
        .with_for_update()
    ).first()
    if row is None:
        return None  # the caller counts the wrong try in its own transaction (this one rolls back)
    conn.execute(
        pairings.update().where(pairings.c.id == row.id).values(state="claimed", account_id=account.id)
    )
    return load(conn, row.id)


def count_wrong_code(conn: Connection, account_id: int, now: int) -> None:
    for name in (throttle.key("pair-account", str(account_id)), "pair-global"):
        throttle.bump(conn, name, now, 60)


def respond(
    conn: Connection, row: Any, account: Any, value: dict[str, Any], now: int, member_of: set[str]
) -> Response:
    expect(row, now, "claimed")
    try:
        response = Response.from_json(value, "body")
    except ProtocolError as exc:
        raise from_protocol(exc, "body") from exc
    if (
        response.guardian.id != account.kid
        or response.guardian.sign != bytes(account.sign_pub)
        or response.guardian.seal != bytes(account.seal_pub)
    ):
        raise Problem(
            403, "not-your-key", "the response must carry your account's public keys", field="body.guardian"
        )
    if response.family is not None and response.family not in member_of:
        raise Problem(404, "not-found", "no such family among yours", field="body.family")
    conn.execute(
        pairings.update()
        .where(pairings.c.id == row.id)
        .values(state="responded", response=dumps(response.to_json()).decode())
    )
    return response


def reveal(conn: Connection, row: Any, value: dict[str, Any], now: int) -> Reveal:
    expect(row, now, "responded")
    try:
        rev = Reveal.from_json(value, "body")
    except ProtocolError as exc:
        raise from_protocol(exc, "body") from exc
    if rev.device.id != row.device_id:
        raise Problem(422, "invalid", "not the device that offered", field="body.device.id")
    if commitment(rev.device, rev.nonce) != row.commitment:
        raise Problem(
            422, "invalid", "the keys and nonce do not match the offer's commitment", field="body.nonce"
        )
    conn.execute(
        pairings.update()
        .where(pairings.c.id == row.id)
        .values(state="revealed", reveal=dumps(rev.to_json()).decode())
    )
    return rev


def record_consent(conn: Connection, row: Any, account: Any, answer: Any, now: int) -> int:
    expect(row, now, "responded", "revealed")
    consent_id = consent.record(
        conn,
        family=None,
        device=row.device_id,
        account_id=account.id,
        kid=account.kid,
        answer=answer,
        now=now,
        pairing=row.id,
    )
    conn.execute(pairings.update().where(pairings.c.id == row.id).values(consent_id=consent_id))
    return consent_id


def complete(conn: Connection, row: Any, account: Any, body: Any, now: int) -> None:
    expect(row, now, "revealed")
    if row.consent_id is None:
        raise conflict(
            "consent-first",
            "show the consent notice and record the answer before completing (POST .../consent)",
            "body",
        )
    answered = conn.execute(select(consents.c.version).where(consents.c.id == row.consent_id)).scalar()
    if answered is None or not consent.answers_current(str(answered)):
        raise conflict("notice-changed", "the notice changed since it was answered; ask again", "body")
    value = body.complete.model_dump()
    try:
        done = Complete.from_json(value, "body.complete")
    except ProtocolError as exc:
        raise from_protocol(exc, "body.complete") from exc
    response = Response.from_json(loads(row.response.encode(), "stored", 100_000))
    rev = Reveal.from_json(loads(row.reveal.encode(), "stored", 100_000))
    ring = _check_keyring(conn, done, response, rev)
    ids = [i for i, _ in done.messages]
    meta = {m.id: m for m in body.meta}
    if sorted(ids) != sorted(meta) or len(set(ids)) != len(ids):
        raise Problem(
            422, "invalid", "meta must describe each message of complete.messages once", field="body.meta"
        )
    for i, (message_id, sealed) in enumerate(done.messages):
        want = guardian_message_ctx(ring.family, rev.device.id, message_id)
        if sealed.ctx != want:
            raise Problem(
                422,
                "invalid",
                f"sealed for {sealed.ctx!r}, expected {want!r}",
                field=f"body.complete.messages[{i}].sealed.ctx",
            )
        if rev.device.seal_hex not in sealed.recipients:
            raise Problem(
                422, "invalid", "not sealed to the device", field=f"body.complete.messages[{i}].sealed.wraps"
            )
    policies = [m for m in body.meta if m.type == "policy"]
    if any(p.retention_days is None for p in policies):
        raise Problem(422, "invalid", "a policy's retention_days is required", field="body.meta")
    if not any(m.type == "consent" for m in body.meta):
        raise Problem(
            422, "invalid", "complete carries the consent message (PROTOCOL.md §7.1)", field="body.meta"
        )
    conn.execute(
        pairings.update()
        .where(pairings.c.id == row.id)
        .values(
            state="completed",
            complete=to_json(value),
            complete_meta=to_json([m.model_dump() for m in body.meta]),
        )
    )


def _check_keyring(conn: Connection, done: Complete, response: Response, rev: Reveal) -> Keyring:
    try:
        if response.family is None:
            ring = Keyring.from_entries(done.entries, "body.complete.entries")
            if len(done.entries) != 2 or response.guardian.id not in ring.guardians:
                raise Problem(
                    422,
                    "invalid",
                    "a new family is a genesis by you and this device",
                    field="body.complete.entries",
                )
            if conn.execute(select(families.c.id).where(families.c.id == ring.family)).first() is not None:
                raise conflict("family-exists", "that family id is taken", "body.complete.entries[0]")
        else:
            ring = load_keyring(conn, response.family).extend_all(done.entries, "body.complete.entries")
            if len(done.entries) != ring.head_seq + 1:
                raise Problem(
                    422, "invalid", "complete carries the whole keyring", field="body.complete.entries"
                )
    except ProtocolError as exc:
        raise from_protocol(exc, "body.complete.entries") from exc
    last = ring.entries[-1]
    added = ring.devices.get(rev.device.id)
    if (
        last.kid != response.guardian.id
        or added is None
        or not added.same_keys(rev.device)
        or parse_body(last.body_bytes).payload.get("op") != "add_device"
    ):
        raise Problem(
            422,
            "invalid",
            "the last entry must add exactly the revealed device, signed by you",
            field="body.complete.entries",
        )
    return ring


def paired(
    conn: Connection, row: Any, value: dict[str, Any], now: int, retention_default: int
) -> tuple[str, list[str]]:
    """The device's signed confirmation: write the family, keyring, device and queue."""
    expect(row, now, "completed")
    rev = Reveal.from_json(loads(row.reveal.encode(), "stored", 100_000))
    done = Complete.from_json(from_json(row.complete))
    response = Response.from_json(loads(row.response.encode(), "stored", 100_000))
    envelope = parse_entry(value, "body.envelope")
    try:
        body = verify(envelope, rev.device.sign_key, Purpose.DEVICE, "body.envelope")
        payload = parse_payload(body, "body.envelope.body.payload")
    except ProtocolError as exc:
        raise from_protocol(exc, "body.envelope") from exc
    head = entry_hash(done.entries[-1])
    family_id = parse_body(done.entries[0].body_bytes).family
    if (
        not isinstance(payload, Paired)
        or payload.session != row.id
        or payload.keyring_head != head
        or body.family != family_id
        or body.device != rev.device.id
    ):
        raise Problem(
            422,
            "invalid",
            "not this session's paired message (session, keyring head, family)",
            field="body.envelope.body.payload",
        )
    if response.family is None:
        conn.execute(families.insert().values(id=family_id, head_seq=-1, head_hash="0" * 64, created_at=now))
        conn.execute(
            memberships.insert().values(
                family_id=family_id, account_id=row.account_id, kid=response.guardian.id, since=now
            )
        )
        held = -1
    else:
        held = lock_family(conn, family_id).head_seq
        if parse_body(done.entries[-1].body_bytes).seq != held + 1:
            raise conflict(
                "stale-keyring", "the family's keyring moved on during pairing; pair again", "body"
            )
    others = [
        r.id
        for r in conn.execute(
            select(devices.c.id).where(devices.c.family_id == family_id, devices.c.status != "removed")
        ).all()
    ]
    for entry in done.entries:
        if parse_body(entry.body_bytes).seq > held:
            store_entry(conn, family_id, entry, now)
            for other in others:  # the family's other devices learn of the new device
                queue_entry(conn, other, entry, now, response.guardian.id)
    meta = from_json(row.complete_meta)
    policy_seq = max((m["seq"] for m in meta if m["type"] == "policy"), default=0)
    retention = next((m["retention_days"] for m in meta if m["type"] == "policy"), retention_default)
    previous = conn.execute(select(devices.c.id).where(devices.c.id == rev.device.id)).first()
    if previous is not None:  # a device removed earlier pairs again: start afresh
        conn.execute(devices.delete().where(devices.c.id == rev.device.id))
    zero = bytes(32)
    conn.execute(
        devices.insert().values(
            id=rev.device.id,
            family_id=family_id,
            label=rev.device.label,
            sign_pub=rev.device.sign,
            seal_pub=rev.device.seal,
            status="active",
            paired_at=now,
            last_contact=now,
            reported_head=0,
            epoch=os.urandom(16).hex(),
            base_seq=0,
            base_hash=zero,
            cursor=0,
            cursor_hash=zero,
            pending_seq=0,
            policy_seq=policy_seq,
            retention_days=retention,
            applied_seq=0,
        )
    )
    sealed = dict(done.messages)
    n = next_queue_n(conn, rev.device.id)
    for i, m in enumerate(meta):
        conn.execute(
            messages.insert().values(
                device_id=rev.device.id,
                id=m["id"],
                n=n + i,
                type=m["type"],
                seq=m["seq"],
                content=dumps(sealed[m["id"]].to_json()).decode(),
                retention_days=m.get("retention_days"),
                sender=response.guardian.id,
                queued_at=now,
                status="sent",
            )
        )
    conn.execute(consents.update().where(consents.c.pairing_id == row.id).values(family_id=family_id))
    conn.execute(pairings.update().where(pairings.c.id == row.id).values(state="paired"))
    audit.emit(
        conn,
        family=family_id,
        device=rev.device.id,
        kind="device",
        data={"status": "paired", "label": rev.device.label},
        now=now,
    )
    return family_id, others


def abort(conn: Connection, row: Any, reason: str, now: int) -> None:
    if row.state in FINAL:
        raise conflict("wrong-state", f"the pairing session is {row.state}", state=row.state)
    conn.execute(pairings.update().where(pairings.c.id == row.id).values(state="aborted", reason=reason))


def view(row: Any, now: int) -> dict[str, Any]:
    family = None
    if row.response is not None:
        family = from_json(row.response).get("family")
    if row.complete is not None:
        first = from_json(row.complete)["entries"][0]
        family = parse_body(
            Complete.from_json({"entries": [first], "messages": []}).entries[0].body_bytes
        ).family
    return {
        "session": row.id,
        "state": state_of(row, now),
        "expires_at": row.expires_at,
        "reason": row.reason,
        "device": row.device_id,
        "family": family,
    }
