"""Accounts and sessions against the real server: sign-up, the decoy KDF parameters,
log-in back-off per account and per address, recovery, password change, CSRF, cookies."""

from __future__ import annotations

import httpx
from support.dashboard_clients import GuardianClient

from protocol import account
from protocol.encoding import b64


def test_signup_login_logout(make_guardian, server) -> None:
    mum = make_guardian()
    me = mum.ok("GET", "/api/v1/session")
    assert me["account"]["kid"] == mum.kid and me["account"]["email"] == mum.email
    wrapped = me["account"]["wrapped_keys"]
    keys = account.derive(mum.password, account.KdfParams.from_json(me["account"]["kdf"]))
    assert account.unwrap_identity(wrapped, keys.wrap, mum.kid).id == mum.kid
    r = mum.call("DELETE", "/api/v1/session")
    assert r.status_code == 204
    assert mum.call("GET", "/api/v1/families").status_code == 401
    assert mum.login().status_code == 200
    assert mum.call("GET", "/api/v1/families").status_code == 200


def test_cookie_is_httponly_strict_and_scoped(make_guardian) -> None:
    mum = make_guardian(signup=False)
    r = mum.http.post("/api/v1/accounts", json=mum.signup_body())
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/api" in cookie


def test_duplicate_email_and_bad_keys_refused(make_guardian) -> None:
    mum = make_guardian()
    again = make_guardian(signup=False)
    again.email = mum.email
    r = again.http.post("/api/v1/accounts", json=again.signup_body())
    assert r.status_code == 409 and r.json()["field"] == "body.email"
    bad = make_guardian(signup=False)
    body = bad.signup_body()
    body["guardian"]["kid"] = "0" * 32
    r = bad.http.post("/api/v1/accounts", json=body)
    assert r.status_code == 422 and r.json()["field"].startswith("body.guardian")
    assert r.headers["content-type"].startswith("application/problem+json")


def test_prelogin_decoy_is_stable_and_looks_real(make_guardian) -> None:
    mum = make_guardian()
    real = mum.http.post("/api/v1/accounts/prelogin", json={"email": mum.email}).json()
    a = mum.http.post("/api/v1/accounts/prelogin", json={"email": "nobody@example.com"}).json()
    b = mum.http.post("/api/v1/accounts/prelogin", json={"email": "nobody@example.com"}).json()
    c = mum.http.post("/api/v1/accounts/prelogin", json={"email": "other@example.com"}).json()
    assert a == b and a != c and set(a) == set(real) and a["alg"] == real["alg"]
    assert real == mum.kdf.to_json()


def test_login_backoff_per_account_and_address(clocked_server, clock) -> None:
    from dashboard.accounts import ADDRESS_FACTOR

    url = clocked_server.url
    mum = GuardianClient(url, "mum@example.com").signup()
    dad = GuardianClient(url, "dad@example.com").signup()
    free = clocked_server.state.settings.login_free_failures
    for _ in range(free):
        assert mum.login("wrong password").status_code == 401
    r = mum.login("wrong password")
    assert r.status_code == 401 and r.headers["retry-after"] == "1"
    r = mum.login()  # even the right password waits while blocked (and is not checked)
    assert r.status_code == 429 and r.json()["type"].endswith("backoff") and r.headers["retry-after"] == "1"
    assert dad.login().status_code == 200  # another account from the same address: not yet blocked
    clock.advance(1)
    waits = []
    for _ in range(3):  # back-off doubles: 2 s, 4 s, 8 s
        r = mum.login("wrong password")
        waits.append(int(r.headers["retry-after"]))
        clock.advance(waits[-1])
    assert waits == [2, 4, 8]
    assert mum.login().status_code == 200  # success resets the account's counter
    # the address: after ADDRESS_FACTOR x free failures from it, every account waits
    for i in range(free * ADDRESS_FACTOR - (free + 3) + 1):  # mum's 7 failures counted there too
        clock.advance(1000)  # past dad's own account back-off
        assert dad.login("wrong password").status_code == 401, i
    assert mum.login().status_code == 429


def test_recovery_sets_a_new_password_and_ends_sessions(make_guardian, server) -> None:
    mum = make_guardian()
    old_cookie = mum.http.cookies.get("mm_session")
    fresh = httpx.Client(base_url=server.url)
    rauth = b64(account.recovery_auth(mum.recovery))
    wrapped = fresh.post("/api/v1/accounts/recovery/keys", json={"email": mum.email, "recovery_auth": rauth})
    assert wrapped.status_code == 200, wrapped.text
    identity = account.unwrap_identity(
        wrapped.json()["recovery_wrapped_keys"], account.recovery_wrap(mum.recovery), mum.kid
    )
    params = account.KdfParams.new(iterations=100_000)
    keys = account.derive("a new password", params)
    r = fresh.post(
        "/api/v1/accounts/recovery",
        json={
            "email": mum.email,
            "recovery_auth": rauth,
            "kdf": params.to_json(),
            "auth": b64(keys.auth),
            "wrapped_keys": account.wrap_identity(identity, keys.wrap),
        },
    )
    assert r.status_code == 200, r.text
    stale = httpx.Client(base_url=server.url, cookies={"mm_session": old_cookie})
    assert stale.get("/api/v1/session").status_code == 401
    mum.password = "a new password"
    assert mum.login().status_code == 200
    wrong = fresh.post(
        "/api/v1/accounts/recovery/keys", json={"email": mum.email, "recovery_auth": b64(bytes(32))}
    )
    assert wrong.status_code == 401 and wrong.json()["field"] == "body.recovery_auth"


def test_password_change(make_guardian) -> None:
    mum = make_guardian()
    params = account.KdfParams.new(iterations=200_000)
    old = account.derive(mum.password, mum.kdf)
    new = account.derive("another one", params)
    r = mum.call(
        "PUT",
        "/api/v1/accounts/me/password",
        json={
            "auth": b64(old.auth),
            "kdf": params.to_json(),
            "new_auth": b64(new.auth),
            "wrapped_keys": account.wrap_identity(mum.ref.identity, new.wrap),
        },
    )
    assert r.status_code == 200, r.text
    mum.csrf = r.json()["csrf_token"]
    mum.password = "another one"
    assert mum.login().status_code == 200
    assert mum.ok("POST", "/api/v1/accounts/prelogin", json={"email": mum.email})["iterations"] == 200_000


def test_csrf_header_required_for_changes(make_guardian) -> None:
    mum = make_guardian()
    r = mum.http.post("/api/v1/pairing/claim", json={"code": "12345678"})
    assert r.status_code == 403 and r.json()["field"] == "header.x-csrf-token"
    r = mum.http.post("/api/v1/pairing/claim", json={"code": "12345678"}, headers={"X-CSRF-Token": "nope"})
    assert r.status_code == 403
