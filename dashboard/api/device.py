"""The device's routes: challenge log-in, the server's signed time, sealed uploads, the
queue (long-poll) and signed acks. Every route but log-in, time and the server key needs
`Authorization: Bearer <device token>`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from dashboard import consent, sync
from dashboard.api import models as m
from dashboard.api.deps import ActiveDevice, DeviceDep, State
from dashboard.api.waiting import wait_for
from dashboard.db.schema import devices
from dashboard.errors import Problem, from_protocol
from dashboard.families import family_guardian_accounts
from dashboard.push.hub import device_topic, family_topic
from dashboard.security import tokens
from dashboard.state import AppState
from dashboard.webpush.provider import Notification
from protocol.encoding import b64, unb64
from protocol.errors import ProtocolError
from protocol.server import TIME_NONCE_BYTES, server_time_message

router = APIRouter(prefix="/api/v1", tags=["device"])


def origin(state: AppState, request: Request) -> str:
    """The origin device log-ins are bound to: the configured public one (behind a TLS
    proxy the server cannot see it), else the request's own (development)."""
    if state.settings.public_origin:
        return state.settings.public_origin
    return f"{request.url.scheme}://{request.url.netloc}"


@router.get("/server-key", response_model=dict[str, str], tags=["device"])
def server_key(state: State) -> dict[str, str]:
    """The server's Ed25519 public key (hex), which devices pin at pairing."""
    return {"server_key": state.secrets.signing_public.hex()}


@router.get("/device/time", response_model=m.SignedTime)
def signed_time(state: State, nonce: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{22}$")]) -> dict[str, Any]:
    """The server's time signed with its key over the device's 16-byte nonce (PROTOCOL.md §15)."""
    try:
        raw = unb64(nonce, "query.nonce", TIME_NONCE_BYTES)
    except ProtocolError as exc:
        raise from_protocol(exc, "query.nonce") from exc
    now = state.now()
    sig = state.secrets.signing_key.sign(server_time_message(now, raw))
    return {
        "time": now,
        "nonce": nonce,
        "signature": b64(sig),
        "server_key": state.secrets.signing_public.hex(),
    }


@router.post("/device/auth/challenge", response_model=m.ChallengeOut)
def challenge(body: m.Challenge, request: Request, state: State) -> dict[str, Any]:
    now = state.now()
    with state.db.write() as conn:
        nonce = sync.challenge(conn, body.device_id, now)
    return {
        "nonce": b64(nonce),
        "server_time": now,
        "expires_at": now + sync.CHALLENGE_TTL,
        "origin": origin(state, request),
    }


@router.post("/device/auth/token", response_model=m.TokenOut)
def token(body: m.TokenRequest, request: Request, state: State) -> dict[str, Any]:
    """Exchange a signed challenge for a short-lived bearer token."""
    now = state.now()
    try:
        with state.db.write() as conn:
            ok = sync.check_login(
                conn, body.device_id, body.nonce, body.signature, origin(state, request), now
            )
            if ok:
                sync.touch(conn, body.device_id, now)
    except ProtocolError as exc:
        raise from_protocol(exc, "body") from exc
    if not ok:
        raise Problem(
            401,
            "bad-login",
            "the challenge is unknown, used or expired, or the signature does not "
            "verify for this device and origin",
            field="body.signature",
        )
    expires = now + state.settings.device_token_ttl
    return {
        "token": tokens.device_token(state.secrets.token_key, body.device_id, expires),
        "expires_at": expires,
    }


@router.get("/device/journal", response_model=m.JournalCursor)
def journal_cursor(dev: ActiveDevice, state: State) -> dict[str, Any]:
    with state.db.read() as conn:
        row = conn.execute(select(devices).where(devices.c.id == dev.id)).one()
    return sync.cursor_view(row)


@router.post("/device/journal", response_model=m.JournalCursor)
def upload_journal(body: m.JournalUpload, dev: ActiveDevice, state: State) -> dict[str, Any]:
    """A range of sealed records by seq (idempotent), with segment key wraps and signed
    checkpoints; answers the acknowledged cursor and the epoch."""
    with state.db.write() as conn:
        return sync.upload_journal(conn, dev.id, body, state.now())


@router.put("/device/summaries", response_model=m.Accepted)
def upload_summary(body: m.SummaryUpload, dev: ActiveDevice, state: State) -> dict[str, Any]:
    """A sealed daily summary; replaces the one held for that day."""
    with state.db.write() as conn:
        sync.store_summary(conn, dev.row, body.day, body.sealed.model_dump(), state.now())
    return {"ok": True}


@router.post("/device/requests", response_model=m.Accepted)
def upload_request(body: m.RequestUpload, dev: ActiveDevice, state: State) -> dict[str, Any]:
    """A child's sealed request; the cleartext kind lets the server notify the guardians."""
    now = state.now()
    with state.db.write() as conn:
        new = sync.store_request(conn, dev.row, body.id, body.kind, body.sealed.model_dump(), now)
        push_ok = consent.effective(conn, dev.id).push_notifications
        accounts = family_guardian_accounts(conn, dev.family_id) if new and push_ok else []
    if new:
        state.hub.publish([family_topic(dev.family_id)])
    if accounts:
        state.notifier.notify(
            accounts, Notification(dev.family_id, dev.id, "request", {"kind": body.kind, "id": body.id})
        )
    return {"ok": True}


@router.put("/device/catalogue", response_model=m.Accepted)
def upload_catalogue(body: m.CatalogueUpload, dev: ActiveDevice, state: State) -> dict[str, Any]:
    with state.db.write() as conn:
        sync.store_catalogue(conn, dev.row, body.sealed.model_dump(), state.now())
    return {"ok": True}


@router.post("/device/acks", response_model=m.AckResults)
def post_acks(body: m.AckUpload, dev: DeviceDep, state: State) -> dict[str, Any]:
    """Signed acks of queued messages (applied, refused with the reason, duplicate)."""
    with state.db.write() as conn:
        results, _gone = sync.store_acks(conn, dev.row, [a.model_dump() for a in body.acks], state.now())
    state.hub.publish([family_topic(dev.family_id)])
    return {"results": results}


@router.post("/device/receipts", response_model=m.Accepted)
def post_receipt(body: m.ReceiptUpload, dev: DeviceDep, state: State) -> dict[str, Any]:
    """The device's signed deletion receipt (PROTOCOL.md §6.4)."""
    with state.db.write() as conn:
        sync.store_receipt(conn, dev.row, body.envelope.model_dump(), state.now())
    state.hub.publish([family_topic(dev.family_id)])
    return {"ok": True}


@router.get("/device/queue", response_model=m.Queue)
async def queue(
    dev: DeviceDep,
    state: State,
    wait: Annotated[float, Query(ge=0, le=30, description="long-poll seconds")] = 0,
) -> dict[str, Any]:
    """Messages not yet acknowledged, oldest first (at most 100); with `wait`, answers as
    soon as there is one (the long-poll fallback of the push channel)."""

    def check() -> list[dict[str, Any]] | None:
        with state.db.read() as conn:
            items = sync.queue_items(conn, dev.id)
        return items or None

    items = await wait_for(state, [device_topic(dev.id)], wait, check)
    with state.db.write() as conn:
        sync.touch(conn, dev.id, state.now())
    return {"device": dev.id, "status": dev.status, "messages": items or []}
