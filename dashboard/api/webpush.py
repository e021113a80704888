"""Web Push subscriptions of the guardian's browser."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from dashboard.api import models as m
from dashboard.api.deps import GuardianDep, State
from dashboard.db.schema import webpush_subscriptions
from dashboard.errors import Problem, from_protocol
from dashboard.webpush.sender import endpoint_allowed
from protocol.encoding import b64, unb64
from protocol.errors import ProtocolError

router = APIRouter(prefix="/api/v1/webpush", tags=["webpush"])
MAX_SUBSCRIPTIONS = 10


@router.get("/key", response_model=m.VapidKey)
def vapid_key(state: State) -> dict[str, str]:
    """The VAPID public key for PushManager.subscribe's applicationServerKey (b64url)."""
    return {"public_key": b64(state.secrets.vapid_public)}


@router.post("/subscriptions", status_code=201, response_model=m.Accepted)
def subscribe(body: m.PushSubscription, who: GuardianDep, state: State) -> dict[str, Any]:
    if not endpoint_allowed(body.endpoint, state.settings.webpush_allow_http_loopback):
        raise Problem(422, "invalid", "the endpoint must be an https URL", field="body.endpoint")
    try:
        p256dh = unb64(body.keys.p256dh, "body.keys.p256dh", 65)
        auth = unb64(body.keys.auth, "body.keys.auth", 16)
    except ProtocolError as exc:
        raise from_protocol(exc, "body.keys") from exc
    if p256dh[0] != 4:
        raise Problem(422, "invalid", "not an uncompressed P-256 point", field="body.keys.p256dh")
    try:
        _store(state, who.account_id, body.endpoint, p256dh, auth)
    except IntegrityError as exc:  # the same endpoint subscribed at the same moment
        raise Problem(
            409, "conflict", "this endpoint is being subscribed; retry", field="body.endpoint"
        ) from exc
    return {"ok": True}


def _store(state: Any, account_id: int, endpoint: str, p256dh: bytes, auth: bytes) -> None:
    with state.db.write() as conn:
        conn.execute(webpush_subscriptions.delete().where(webpush_subscriptions.c.endpoint == endpoint))
        held = (
            conn.execute(
                select(func.count())
                .select_from(webpush_subscriptions)
                .where(webpush_subscriptions.c.account_id == account_id)
            ).scalar()
            or 0
        )
        if held >= MAX_SUBSCRIPTIONS:
            raise Problem(
                409, "too-many", f"at most {MAX_SUBSCRIPTIONS} browsers per account", field="body.endpoint"
            )
        conn.execute(
            webpush_subscriptions.insert().values(
                account_id=account_id,
                endpoint=endpoint,
                p256dh=p256dh,
                auth=auth,
                created_at=state.now(),
            )
        )


@router.post("/subscriptions/delete", status_code=204, response_class=Response)
def unsubscribe(body: m.PushUnsubscribe, who: GuardianDep, state: State) -> Response:
    with state.db.write() as conn:
        conn.execute(
            webpush_subscriptions.delete().where(
                webpush_subscriptions.c.endpoint == body.endpoint,
                webpush_subscriptions.c.account_id == who.account_id,
            )
        )
    return Response(status_code=204)
