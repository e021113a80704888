"""Who is asking: a guardian (session cookie + CSRF header), a device (bearer token from the
challenge log-in), or a device in the middle of pairing (the session's secret).

Every guardian route that names a family goes through `member`, which is the one place
that decides whether this account may see that family (an active guardian in its keyring:
the membership rows are derived from the keyring, see `dashboard.families`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy import Connection, select

from dashboard.db.schema import accounts, devices, memberships, sessions
from dashboard.errors import Problem
from dashboard.security import tokens
from dashboard.state import AppState

SESSION_COOKIE = "mm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.mm
    return state


State = Annotated[AppState, Depends(app_state)]


@dataclass(frozen=True)
class Guardian:
    account_id: int
    email: str
    kid: str
    row: Any
    session_hash: bytes


def load_session(state: AppState, conn: Connection, cookie: str | None) -> tuple[Any, Any] | None:
    if not cookie or len(cookie) > 64:
        return None
    row = conn.execute(select(sessions).where(sessions.c.token_hash == tokens.digest(cookie))).first()
    if row is None or row.expires_at <= state.now():
        return None
    account = conn.execute(select(accounts).where(accounts.c.id == row.account_id)).first()
    if account is None or account.disabled:
        return None
    return row, account


def guardian(request: Request, state: State) -> Guardian:
    with state.db.read() as conn:
        found = load_session(state, conn, request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise Problem(401, "no-session", "log in first (no valid session cookie)", field="cookie.mm_session")
    session, account = found
    if request.method not in SAFE_METHODS:
        csrf = request.headers.get(CSRF_HEADER, "")
        want = tokens.csrf_token(state.secrets.token_key, request.cookies.get(SESSION_COOKIE, ""))
        if not csrf or not tokens.same(csrf.encode(), want.encode()):
            raise Problem(403, "csrf", "missing or wrong X-CSRF-Token header", field="header.x-csrf-token")
    return Guardian(account.id, account.email, account.kid, account, session.token_hash)


GuardianDep = Annotated[Guardian, Depends(guardian)]

FamilyId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="family id (hex)")]
DeviceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="device id (hex)")]


def require_member(conn: Connection, who: Guardian, family_id: str) -> None:
    row = conn.execute(
        select(memberships.c.kid).where(
            memberships.c.family_id == family_id, memberships.c.account_id == who.account_id
        )
    ).first()
    if row is None:
        # the same answer whether or not the family exists: ids are not probed
        raise Problem(404, "not-found", "no such family among yours", field="path.family")


def require_device(conn: Connection, family_id: str, device_id: str) -> Any:
    row = conn.execute(
        select(devices).where(devices.c.id == device_id, devices.c.family_id == family_id)
    ).first()
    if row is None:
        raise Problem(404, "not-found", "no such device in this family", field="path.device")
    return row


@dataclass(frozen=True)
class Device:
    id: str
    family_id: str
    status: str
    row: Any


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise Problem(401, "no-token", "send Authorization: Bearer <token>", field="header.authorization")
    return value.strip()


def device_from_token(state: AppState, token: str) -> Device | None:
    device_id = tokens.read_device_token(state.secrets.token_key, token, state.now())
    if device_id is None:
        return None
    with state.db.read() as conn:
        row = conn.execute(select(devices).where(devices.c.id == device_id)).first()
    if row is None or row.status == "removed":
        return None
    return Device(row.id, row.family_id, row.status, row)


def device(request: Request, state: State) -> Device:
    found = device_from_token(state, bearer(request))
    if found is None:
        raise Problem(
            401,
            "bad-token",
            "the device token is invalid, expired or revoked; log in again",
            field="header.authorization",
        )
    return found


DeviceDep = Annotated[Device, Depends(device)]


def active_device(dev: DeviceDep) -> Device:
    if dev.status != "active":
        raise Problem(403, "unpairing", "this device is being unpaired: only its queue and acks remain")
    return dev


ActiveDevice = Annotated[Device, Depends(active_device)]
