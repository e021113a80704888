"""Guardian accounts (PROTOCOL.md §13): sign-up, log-in with back-off, recovery, password
change. The server sees only the browser's auth key (hashed again with Argon2id), public
keys and key bundles wrapped under keys it never sees.

Hashing runs outside any database transaction (it is slow); the checks that must be atomic
(the back-off counters, the e-mail's uniqueness) run inside one.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from dashboard.db.schema import accounts, sessions
from dashboard.errors import Problem, from_protocol
from dashboard.jsoncol import from_json, to_json
from dashboard.security import throttle, tokens
from dashboard.state import AppState
from protocol.encoding import b64, unb64
from protocol.errors import ProtocolError
from protocol.keys import party_from_json

DECOY_ITERATIONS = 600_000
ADDRESS_FACTOR = 5  # free failures per address = this x those per account


def normalise_email(email: str) -> str:
    return email.strip().lower()


def decoy_kdf(state: AppState, email: str) -> dict[str, Any]:
    """Stable made-up parameters for an e-mail with no account (so probing shows nothing)."""
    salt = hmac.new(state.secrets.decoy_key, email.encode(), hashlib.sha256).digest()[:16]
    return {"alg": "pbkdf2-sha256", "iterations": DECOY_ITERATIONS, "salt": b64(salt)}


def prelogin(state: AppState, email: str) -> dict[str, Any]:
    email = normalise_email(email)
    with state.db.read() as conn:
        row = conn.execute(select(accounts.c.kdf).where(accounts.c.email == email)).first()
    if row is None:
        return decoy_kdf(state, email)
    kdf: dict[str, Any] = from_json(row.kdf)
    return kdf


def _key(value: str, field: str) -> bytes:
    try:
        return unb64(value, field, 32)
    except ProtocolError as exc:
        raise from_protocol(exc, field) from exc


def signup(state: AppState, body: Any) -> int:
    email = normalise_email(body.email)
    try:
        party = party_from_json(body.guardian.model_dump(), "body.guardian", "kid")
    except ProtocolError as exc:
        raise from_protocol(exc, "body.guardian") from exc
    auth_hash = state.hasher.hash(_key(body.auth, "body.auth"))
    recovery_hash = state.hasher.hash(_key(body.recovery_auth, "body.recovery_auth"))
    now = state.now()
    try:
        with state.db.write() as conn:
            if conn.execute(select(accounts.c.id).where(accounts.c.email == email)).first() is not None:
                raise Problem(409, "email-taken", "an account with this e-mail exists", field="body.email")
            if conn.execute(select(accounts.c.id).where(accounts.c.kid == party.id)).first() is not None:
                raise Problem(
                    409,
                    "kid-taken",
                    "these guardian keys belong to another account",
                    field="body.guardian.kid",
                )
            result = conn.execute(
                accounts.insert().values(
                    email=email,
                    kdf=to_json(body.kdf.model_dump()),
                    auth_hash=auth_hash,
                    recovery_hash=recovery_hash,
                    kid=party.id,
                    sign_pub=party.sign,
                    seal_pub=party.seal,
                    label=party.label,
                    wrapped_keys=to_json(body.wrapped_keys.model_dump()),
                    recovery_wrapped_keys=to_json(body.recovery_wrapped_keys.model_dump()),
                    language=body.language,
                    created_at=now,
                    disabled=False,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]
    except IntegrityError as exc:  # a concurrent sign-up with the same e-mail or keys
        raise Problem(
            409, "email-taken", "an account with this e-mail or these keys exists", field="body.email"
        ) from exc


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf: str
    expires_at: int
    account_id: int


def _new_session(conn: Connection, state: AppState, account_id: int) -> NewSession:
    token = tokens.new_secret()
    csrf = tokens.csrf_token(state.secrets.token_key, token)
    now = state.now()
    expires = now + state.settings.session_ttl
    conn.execute(
        sessions.insert().values(
            token_hash=tokens.digest(token),
            account_id=account_id,
            created_at=now,
            expires_at=expires,
        )
    )
    conn.execute(sessions.delete().where(sessions.c.account_id == account_id, sessions.c.expires_at <= now))
    return NewSession(token, csrf, expires, account_id)


def _check_secret(state: AppState, email: str, address: str, secret: bytes, column: str, what: str) -> Any:
    """Back-off first (no hashing while blocked), then one constant-work verify."""
    keys = [throttle.key(f"{what}-account", email), throttle.key(f"{what}-address", address)]
    now = state.now()
    with state.db.read() as conn:
        throttle.check_blocked(conn, keys, now, f"{what} attempts")
        row = conn.execute(select(accounts).where(accounts.c.email == email)).first()
    stored = None if row is None or row.disabled else getattr(row, column)
    ok = state.hasher.verify(stored, secret)
    with state.db.write() as conn:
        if not ok:
            free = state.settings.login_free_failures
            # an address is shared by a household or a carrier's NAT: it gets more free tries
            waits = [
                throttle.fail(conn, k, now, free * (1 if i == 0 else ADDRESS_FACTOR))
                for i, k in enumerate(keys)
            ]
            wait = max(waits)
        else:
            # only the account's counter: a success on one account must not clear the
            # address's record of guesses at others
            throttle.reset(conn, keys[0])
    if not ok:
        raise Problem(
            401,
            "bad-credentials",
            "wrong e-mail or password" if what == "login" else "wrong e-mail or recovery key",
            field="body.auth" if what == "login" else "body.recovery_auth",
            retry_after=wait or None,
        )
    return row


def login(state: AppState, email: str, auth: str, address: str) -> NewSession:
    email = normalise_email(email)
    row = _check_secret(state, email, address, _key(auth, "body.auth"), "auth_hash", "login")
    with state.db.write() as conn:
        return _new_session(conn, state, row.id)


def logout(state: AppState, session_hash: bytes) -> None:
    with state.db.write() as conn:
        conn.execute(sessions.delete().where(sessions.c.token_hash == session_hash))


def recovery_keys(state: AppState, email: str, recovery_auth: str, address: str) -> Any:
    email = normalise_email(email)
    return _check_secret(
        state, email, address, _key(recovery_auth, "body.recovery_auth"), "recovery_hash", "recovery"
    )


def _set_password(state: AppState, account_id: int, body: Any, new_auth: bytes) -> NewSession:
    """New KDF parameters, auth key and wrapped keys; every other session ends."""
    auth_hash = state.hasher.hash(new_auth)
    with state.db.write() as conn:
        conn.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(
                kdf=to_json(body.kdf.model_dump()),
                auth_hash=auth_hash,
                wrapped_keys=to_json(body.wrapped_keys.model_dump()),
            )
        )
        conn.execute(sessions.delete().where(sessions.c.account_id == account_id))
        return _new_session(conn, state, account_id)


def recover(state: AppState, body: Any, address: str) -> NewSession:
    """A new password authorised by the recovery key instead of the old password."""
    row = recovery_keys(state, body.email, body.recovery_auth, address)
    return _set_password(state, row.id, body, _key(body.auth, "body.auth"))


def change_password(state: AppState, account: Any, body: Any, address: str) -> NewSession:
    _check_secret(state, account.email, address, _key(body.auth, "body.auth"), "auth_hash", "login")
    return _set_password(state, account.id, body, _key(body.new_auth, "body.new_auth"))


def account_view(row: Any) -> dict[str, Any]:
    return {
        "email": row.email,
        "kid": row.kid,
        "guardian": {
            "kid": row.kid,
            "sign": bytes(row.sign_pub).hex(),
            "seal": bytes(row.seal_pub).hex(),
            "label": row.label,
        },
        "kdf": from_json(row.kdf),
        "wrapped_keys": from_json(row.wrapped_keys),
        "language": row.language,
        "created_at": row.created_at,
    }
