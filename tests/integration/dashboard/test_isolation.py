"""A session of one family cannot read or change another family's data: every route with
a path parameter, taken from the application's route table, is called by a guardian of
another family (and every device pairing route with another session's secret), with valid
bodies, and must refuse; afterwards the first family's data is unchanged."""

from __future__ import annotations

import time
from typing import Any

from support.dashboard_clients import pair

from protocol.messages import GrantTime
from protocol.pairing import Offer, Reveal


def _routes(app) -> list[tuple[str, str]]:
    """Every HTTP route from the application's own route table (its OpenAPI document, which
    FastAPI builds from the routes), and the socket routes, which OpenAPI cannot describe."""
    out = [(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops]
    return [*out, ("WS", "/api/v1/device/push"), ("WS", "/api/v1/push")]


def test_every_route_refuses_another_family(make_guardian, make_device, server) -> None:
    mum, eve = make_guardian(), make_guardian("Eve")
    dev, eve_dev = make_device(), make_device("Eve's")
    family = pair(mum, dev)
    pair(eve, eve_dev)
    now = int(time.time())
    request_id, _ = dev.send_request(5, "hi")
    msg_id, sealed = mum.ref.decide(dev.id, GrantTime(5, None), now)
    mum.send(family, dev.id, msg_id, sealed, "decision")
    invitation = mum.ok("POST", f"/api/v1/families/{family}/invitations")["id"]
    # a pairing of mum's in progress (revealed), and eve's own pairing session secret
    second = make_device("ET-12")
    dp, created = second.offer()
    claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    session = claimed["session"]
    gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]))
    response = gp.response().to_json()
    mum.ok("POST", f"/api/v1/pairing/{session}/response", json=response)
    second.answer_response(dp, created)
    reveal = mum.ok("GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 5})
    gp.on_reveal(Reveal.from_json(reveal))
    complete = mum.ref.finish_pairing(gp, now)
    ids = [i for i, _ in complete.messages]
    complete_body = {"complete": complete.to_json(), "meta": [{"id": ids[0], "type": "consent", "seq": 0},
                                                              {"id": ids[1], "type": "decision", "seq": 0}]}
    eve_pairing = make_device("Eve's second")
    _edp, eve_created = eve_pairing.offer()
    consent_body = {"version": "2026-12", "language": "en", "accepted": True, "usage_reports": True,
                    "push_notifications": True}
    entry = mum.ref.keyring.entries[-1].to_json()
    message_body = {"id": "cd" * 16, "type": "decision", "seq": 0, "sealed": sealed.to_json()}
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/v1/families/{family}/keyring"): {"entry": entry},
        ("POST", "/api/v1/families/{family}/devices/{device}/messages"): message_body,
        ("POST", "/api/v1/families/{family}/devices/{device}/consent"): consent_body,
        ("POST", "/api/v1/families/{family}/devices/{device}/unpair"): {"decision": None},
        ("POST", "/api/v1/pairing/{session}/response"): response,
        ("POST", "/api/v1/pairing/{session}/consent"): consent_body,
        ("POST", "/api/v1/pairing/{session}/complete"): complete_body,
        ("POST", "/api/v1/pairing/{session}/abort"): {"reason": "eve"},
        ("POST", "/api/v1/device/pairing/{session}/reveal"): Reveal(second.identity.public, dp.nonce).to_json(),
        ("POST", "/api/v1/device/pairing/{session}/paired"): {"envelope": entry},
        ("POST", "/api/v1/device/pairing/{session}/abort"): {"reason": "eve"},
    }
    values = {"family": family, "device": dev.id, "message": msg_id, "invitation": invitation,
              "request": request_id, "session": session}
    not_scoped = {("WS", "/api/v1/device/push"), ("WS", "/api/v1/push")}  # identity from the token only
    checked = 0
    before = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/holdings")
    for method, path in _routes(server.app):
        if "{" not in path:
            continue
        if (method, path) in not_scoped:
            continue
        assert method != "WS", f"a new socket route with a path parameter: {path}"
        url = path.format(**values)
        body = bodies.get((method, path))
        if method in ("POST", "PUT") and body is None and path.endswith(("/messages", "/keyring")):
            raise AssertionError(f"no example body for {method} {path}")
        if path.startswith("/api/v1/device/pairing/"):
            r = eve_pairing.http.request(method, url, json=body, params={"wait": 0},
                                         headers={"Authorization": f"Bearer {eve_created['secret']}"})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
        else:
            r = eve.call(method, url, json=body, params={"wait": 0} if method == "GET" else None)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["field"] in ("path.family", "path.session"), (method, path, r.text)
        checked += 1
    assert checked >= 30
    assert mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/holdings") == before
    assert mum.ok("GET", f"/api/v1/families/{family}/invitations")[0]["status"] == "open"
    assert mum.ok("GET", f"/api/v1/pairing/{session}")["state"] == "revealed"
    assert all(a["kid"] == mum.kid for a in mum.ok("GET", f"/api/v1/families/{family}/audit"))
    assert next(m["id"] for m in mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/messages")
            if m["type"] == "decision") == msg_id
