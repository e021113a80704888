"""Accounts and sessions: /api/v1/accounts*, /api/v1/session."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from dashboard import accounts
from dashboard.api import models as m
from dashboard.api.deps import SESSION_COOKIE, GuardianDep, State, load_session
from dashboard.db.schema import accounts as table
from dashboard.errors import Problem
from dashboard.jsoncol import from_json
from dashboard.security import tokens

router = APIRouter(prefix="/api/v1", tags=["accounts"])


def client_address(request: Request) -> str:
    """The peer as uvicorn reports it (behind a proxy: from X-Forwarded-For when the proxy is
    in --forwarded-allow-ips)."""
    return request.client.host if request.client is not None else "unknown"


def set_cookie(response: Response, state: Any, session: accounts.NewSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=state.settings.session_ttl,
        path="/api",
        secure=state.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def session_out(state: Any, session: accounts.NewSession) -> dict[str, Any]:
    with state.db.read() as conn:
        row = conn.execute(select(table).where(table.c.id == session.account_id)).one()
    return {
        "csrf_token": session.csrf,
        "expires_at": session.expires_at,
        "account": accounts.account_view(row),
    }


@router.post("/accounts/prelogin", response_model=m.Pbkdf2 | m.Argon2id)
def prelogin(body: m.Prelogin, state: State) -> dict[str, Any]:
    """The key-derivation parameters for an e-mail (stable made-up ones if it has no account)."""
    return accounts.prelogin(state, body.email)


@router.post("/accounts", status_code=201, response_model=m.SessionOut)
def sign_up(body: m.SignUp, request: Request, response: Response, state: State) -> dict[str, Any]:
    """Create an account and log it in."""
    accounts.signup(state, body)
    session = accounts.login(state, body.email, body.auth, client_address(request))
    set_cookie(response, state, session)
    return session_out(state, session)


@router.post("/session", response_model=m.SessionOut)
def log_in(body: m.Login, request: Request, response: Response, state: State) -> dict[str, Any]:
    session = accounts.login(state, body.email, body.auth, client_address(request))
    set_cookie(response, state, session)
    return session_out(state, session)


@router.get("/session", response_model=m.SessionOut)
def current_session(request: Request, state: State) -> dict[str, Any]:
    """The session's account and its CSRF token (a reloaded app calls this)."""
    with state.db.read() as conn:
        found = load_session(state, conn, request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise Problem(401, "no-session", "log in first (no valid session cookie)", field="cookie.mm_session")
    session, account = found
    csrf = tokens.csrf_token(state.secrets.token_key, request.cookies[SESSION_COOKIE])
    return {"csrf_token": csrf, "expires_at": session.expires_at, "account": accounts.account_view(account)}


@router.delete("/session", status_code=204, response_class=Response)
def log_out(who: GuardianDep, response: Response, state: State) -> Response:
    accounts.logout(state, who.session_hash)
    out = Response(status_code=204)
    out.delete_cookie(
        SESSION_COOKIE, path="/api", secure=state.settings.cookie_secure, httponly=True, samesite="strict"
    )
    return out


@router.post("/accounts/recovery/keys", response_model=m.RecoveryKeys)
def recovery_keys(body: m.RecoveryStart, request: Request, state: State) -> dict[str, Any]:
    """Step 1 of recovery: the key bundle wrapped under the recovery key."""
    row = accounts.recovery_keys(state, body.email, body.recovery_auth, client_address(request))
    return {"kid": row.kid, "recovery_wrapped_keys": from_json(row.recovery_wrapped_keys)}


@router.post("/accounts/recovery", response_model=m.SessionOut)
def recover(body: m.RecoveryFinish, request: Request, response: Response, state: State) -> dict[str, Any]:
    """Step 2: a new password; every other session of the account ends."""
    session = accounts.recover(state, body, client_address(request))
    set_cookie(response, state, session)
    return session_out(state, session)


@router.put("/accounts/me/password", response_model=m.SessionOut)
def change_password(
    body: m.PasswordChange, who: GuardianDep, request: Request, response: Response, state: State
) -> dict[str, Any]:
    session = accounts.change_password(state, who.row, body, client_address(request))
    set_cookie(response, state, session)
    return session_out(state, session)
