"""Pairing (PROTOCOL.md §7): the device's routes (/api/v1/device/pairing, bearer = the
session's secret) and the guardian's (/api/v1/pairing, session cookie)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import Connection, select

from dashboard import consent, pairing
from dashboard.api import models as m
from dashboard.api.deps import Guardian, GuardianDep, State, bearer
from dashboard.api.waiting import wait_for
from dashboard.db.schema import consents, memberships
from dashboard.errors import Problem, from_protocol
from dashboard.jsoncol import from_json
from dashboard.push.hub import device_topic, family_topic
from dashboard.state import AppState
from protocol.errors import ProtocolError
from protocol.pairing import Offer

router = APIRouter(prefix="/api/v1", tags=["pairing"])
Session = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="pairing session id")]
Wait = Annotated[float, Query(ge=0, le=30, description="seconds to wait for the other side")]


def topic(session: str) -> str:
    return f"pairing:{session}"


Step = Callable[[Connection, Any, int], Any]


def _step(
    state: AppState,
    session: str,
    load: Callable[[Connection], Any],
    action: Step,
    extra_topics: Callable[[Any], list[str]] | None = None,
) -> dict[str, Any]:
    """One pairing step in one transaction: authenticate and lock the session (`load`),
    act, answer its new state, and wake the other side."""
    now = state.now()
    with state.db.write() as conn:
        row = load(conn)
        result = action(conn, row, now)
        out = pairing.view(pairing.load(conn, session), now)
    state.hub.publish([topic(session), *(extra_topics(result) if extra_topics else [])])
    return out


def _as_device(session: str, request: Request) -> Callable[[Connection], Any]:
    def load(conn: Connection) -> Any:
        pairing.for_device(conn, session, bearer(request))
        return pairing.load(conn, session, lock=True)

    return load


def _as_guardian(session: str, who: Guardian) -> Callable[[Connection], Any]:
    return lambda conn: pairing.for_guardian(conn, session, who.account_id, lock=True)


async def _wait(
    state: AppState,
    session: str,
    wait: float,
    read: Callable[[Connection], Any],
    found: Callable[[Any], Any],
    *,
    ended_is_an_answer: bool = False,
) -> Any:
    """Long-poll until `found(row)` is not None (204 when `wait` passes); an aborted or
    expired session ends the wait with its problem (unless that is the answer awaited)."""

    def check() -> Any:
        with state.db.read() as conn:
            row = read(conn)
        if not ended_is_an_answer:
            _raise_if_over(row, state.now())
        return found(row)

    value = await wait_for(state, [topic(session)], wait, check)
    return Response(status_code=204) if value is None else value


def _stored(column: str) -> Callable[[Any], Any]:
    return lambda row: None if getattr(row, column) is None else from_json(getattr(row, column))


# ---------------------------------------------------------------------- device


@router.post("/device/pairing", status_code=201, response_model=m.PairingCreated)
def create(body: m.PairingCreate, state: State) -> dict[str, Any]:
    """The device's offer: answers the session, its secret (the device's bearer until
    paired), the 8-digit code to show, and the server's key to pin."""
    try:
        offer = Offer.from_json(body.offer.model_dump(), "body.offer")
    except ProtocolError as exc:
        raise from_protocol(exc, "body.offer") from exc
    now = state.now()
    with state.db.write() as conn:
        session, secret, code = pairing.create(conn, offer, now, state.settings.pairing_ttl)
    return {
        "session": session,
        "secret": secret,
        "code": code,
        "expires_at": now + state.settings.pairing_ttl,
        "server_key": state.secrets.signing_public.hex(),
    }


@router.get("/device/pairing/{session}", response_model=m.PairingState)
def device_state(session: Session, request: Request, state: State) -> dict[str, Any]:
    with state.db.read() as conn:
        return pairing.view(pairing.for_device(conn, session, bearer(request)), state.now())


@router.get(
    "/device/pairing/{session}/response",
    response_model=m.PairingResponse,
    responses={204: {"description": "no response yet"}},
)
async def wait_response(session: Session, request: Request, state: State, wait: Wait = 25) -> Any:
    """Long-poll for the guardian's response (204 when `wait` passes without one)."""
    return await _wait(
        state, session, wait, lambda c: pairing.for_device(c, session, bearer(request)), _stored("response")
    )


@router.post("/device/pairing/{session}/reveal", response_model=m.PairingState)
def post_reveal(session: Session, body: m.PairingReveal, request: Request, state: State) -> dict[str, Any]:
    return _step(
        state,
        session,
        _as_device(session, request),
        lambda conn, row, now: pairing.reveal(conn, row, body.model_dump(), now),
    )


@router.get(
    "/device/pairing/{session}/complete",
    response_model=m.Complete,
    responses={204: {"description": "not completed yet"}},
)
async def wait_complete(session: Session, request: Request, state: State, wait: Wait = 25) -> Any:
    """Long-poll for the guardian's complete (the keyring and first messages)."""
    return await _wait(
        state, session, wait, lambda c: pairing.for_device(c, session, bearer(request)), _stored("complete")
    )


@router.post("/device/pairing/{session}/paired", response_model=m.PairingState)
def post_paired(session: Session, body: m.PairedPost, request: Request, state: State) -> dict[str, Any]:
    """The device's signed `paired` message: the family, keyring and device are stored now."""
    return _step(
        state,
        session,
        _as_device(session, request),
        lambda conn, row, now: pairing.paired(conn, row, body.envelope.model_dump(), now, 30),
        lambda result: [family_topic(result[0]), *[device_topic(d) for d in result[1]]],
    )


@router.post("/device/pairing/{session}/abort", response_model=m.PairingState)
def device_abort(session: Session, body: m.PairingAbort, request: Request, state: State) -> dict[str, Any]:
    return _step(
        state,
        session,
        _as_device(session, request),
        lambda conn, row, now: pairing.abort(conn, row, body.reason, now),
    )


def _raise_if_over(row: Any, now: int) -> None:
    current = pairing.state_of(row, now)
    if current == "aborted":
        raise Problem(409, "aborted", f"the pairing was aborted: {row.reason}", extra={"state": "aborted"})
    if current == "expired":
        raise Problem(410, "expired", "the pairing session expired (10 minutes)")


# ---------------------------------------------------------------------- guardian


@router.post("/pairing/claim", response_model=m.PairingClaimed)
def claim(body: m.PairingClaim, who: GuardianDep, state: State) -> dict[str, Any]:
    """Type the code: the session becomes yours (single use) and you get the offer."""
    now = state.now()
    settings = state.settings
    with state.db.write() as conn:
        row = pairing.claim(
            conn,
            body.code,
            who.row,
            now,
            settings.pairing_tries_per_minute,
            settings.pairing_tries_global_per_minute,
        )
        if row is not None:
            out = {
                "session": row.id,
                "offer": {"device_id": row.device_id, "commitment": row.commitment},
                "expires_at": row.expires_at,
                "notice": consent.current().version,
            }
    if row is None:
        with state.db.write() as conn:
            pairing.count_wrong_code(conn, who.account_id, now)
        raise Problem(
            404, "not-found", "no pairing waits for this code (wrong, used or expired)", field="body.code"
        )
    return out


@router.get("/pairing/{session}", response_model=m.PairingState)
def guardian_state(session: Session, who: GuardianDep, state: State) -> dict[str, Any]:
    with state.db.read() as conn:
        return pairing.view(pairing.for_guardian(conn, session, who.account_id), state.now())


@router.post("/pairing/{session}/response", response_model=m.PairingState)
def post_response(
    session: Session, body: m.PairingResponse, who: GuardianDep, state: State
) -> dict[str, Any]:
    def respond(conn: Connection, row: Any, now: int) -> None:
        mine = {
            r.family_id
            for r in conn.execute(
                select(memberships.c.family_id).where(memberships.c.account_id == who.account_id)
            ).all()
        }
        pairing.respond(conn, row, who.row, body.model_dump(), now, mine)

    return _step(state, session, _as_guardian(session, who), respond)


@router.get(
    "/pairing/{session}/reveal",
    response_model=m.PairingReveal,
    responses={204: {"description": "no reveal yet"}},
)
async def wait_reveal(session: Session, who: GuardianDep, state: State, wait: Wait = 25) -> Any:
    """Long-poll for the device's reveal; then compute and show the SAS."""
    return await _wait(
        state, session, wait, lambda c: pairing.for_guardian(c, session, who.account_id), _stored("reveal")
    )


@router.post("/pairing/{session}/consent", status_code=201, response_model=m.ConsentRecord)
def pairing_consent(
    session: Session, body: m.ConsentAnswer, who: GuardianDep, state: State
) -> dict[str, Any]:
    """Your answer to the consent notice, before complete (acceptance or refusal)."""
    now = state.now()
    with state.db.write() as conn:
        row = pairing.for_guardian(conn, session, who.account_id, lock=True)
        consent_id = pairing.record_consent(conn, row, who.row, body, now)
        return consent.consent_view(conn.execute(select(consents).where(consents.c.id == consent_id)).one())


@router.post("/pairing/{session}/complete", response_model=m.PairingState)
def post_complete(
    session: Session, body: m.PairingComplete, who: GuardianDep, state: State
) -> dict[str, Any]:
    """After the SAS matched: the keyring with the device and the first sealed messages."""
    return _step(
        state,
        session,
        _as_guardian(session, who),
        lambda conn, row, now: pairing.complete(conn, row, who.row, body, now),
    )


@router.get(
    "/pairing/{session}/paired",
    response_model=m.PairingState,
    responses={204: {"description": "not paired yet"}},
)
async def wait_paired(session: Session, who: GuardianDep, state: State, wait: Wait = 25) -> Any:
    """Long-poll until the device confirmed (state `paired`) or the session ended."""

    def ended(row: Any) -> Any:
        now = state.now()
        return (
            pairing.view(row, now) if pairing.state_of(row, now) in ("paired", "aborted", "expired") else None
        )

    return await _wait(
        state, session, wait, lambda c: pairing.for_guardian(c, session, who.account_id), ended
    )


@router.post("/pairing/{session}/abort", response_model=m.PairingState)
def guardian_abort(session: Session, body: m.PairingAbort, who: GuardianDep, state: State) -> dict[str, Any]:
    return _step(
        state,
        session,
        _as_guardian(session, who),
        lambda conn, row, now: pairing.abort(conn, row, body.reason, now),
    )


__all__ = ["device_topic", "router"]
