"""Pairing through the real HTTP rendezvous with protocol.pairing's DevicePairing and the
reference guardian: the SAS agrees, the code is single use and expires, wrong codes are
limited, a key-swapping relay makes the SAS differ and the device refuses."""

from __future__ import annotations

import json
import threading
import time

import httpx
from support.dashboard_clients import GuardianClient, SimDevice, pair
from support.loopback import LoopbackServer, read_body

from protocol.keys import Identity
from protocol.pairing import GuardianPairing, Offer, Response


def test_pairing_makes_family_keyring_device_and_queue(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    ring = mum.keyring_entries(family)
    assert len(ring) == 2 and mum.ref.keyring is not None
    assert [e.to_json() for e in ring] == [e.to_json() for e in mum.ref.keyring.entries]
    deliveries = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/messages")
    assert sorted(d["type"] for d in deliveries) == ["consent", "decision", "policy"]
    assert all(d["status"] == "queued" for d in deliveries)  # sent with complete, awaiting the acks
    assert dev.queue() == []  # not re-sent through the queue
    status = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}")
    assert status["consent"]["accepted"] and status["consent"]["usage_reports"]
    assert status["policy_queued"] == 1 and status["queue_depth"] == 3


def test_code_is_single_use(make_guardian, make_device) -> None:
    mum, eve = make_guardian(), make_guardian("Eve")
    dev = make_device()
    _dp, created = dev.offer()
    assert mum.call("POST", "/api/v1/pairing/claim", json={"code": created["code"]}).status_code == 200
    r = eve.call("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    assert r.status_code == 404 and r.json()["field"] == "body.code"
    r = mum.call("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    assert r.status_code == 404


def test_code_expires(clocked_server, clock, tmp_path) -> None:
    mum = GuardianClient(clocked_server.url, "mum@example.com").signup()
    dev = SimDevice(clocked_server.url, tmp_path / "d")
    _dp, created = dev.offer()
    clock.advance(clocked_server.state.settings.pairing_ttl)
    assert mum.call("POST", "/api/v1/pairing/claim", json={"code": created["code"]}).status_code == 404
    _dp, created = dev.offer()
    claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    clock.advance(clocked_server.state.settings.pairing_ttl)
    gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]))
    r = mum.call("POST", f"/api/v1/pairing/{claimed['session']}/response", json=gp.response().to_json())
    assert r.status_code == 410
    dev.close()


def test_wrong_codes_limited_per_account(make_guardian, make_device, server) -> None:
    mum = make_guardian()
    dev = make_device()
    _dp, created = dev.offer()
    wrong = f"{(int(created['code']) + 1) % 10**8:08d}"
    limit = server.state.settings.pairing_tries_per_minute
    for _ in range(limit):
        assert mum.call("POST", "/api/v1/pairing/claim", json={"code": wrong}).status_code == 404
    r = mum.call("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    assert r.status_code == 429 and "retry-after" in r.headers
    dad = make_guardian("Dad")  # another account is not blocked by mum's tries
    assert dad.call("POST", "/api/v1/pairing/claim", json={"code": created["code"]}).status_code == 200


def test_reveal_must_match_commitment(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    dp, created = dev.offer()
    claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]))
    mum.ok("POST", f"/api/v1/pairing/{claimed['session']}/response", json=gp.response().to_json())
    r = dev.http.get(
        f"/api/v1/device/pairing/{created['session']}/response",
        params={"wait": 5},
        headers=dev.pairing_headers(created),
    )
    reveal = dp.on_response(Response.from_json(r.json())).to_json()
    reveal["nonce"] = reveal["nonce"][::-1]
    r = dev.http.post(
        f"/api/v1/device/pairing/{created['session']}/reveal",
        json=reveal,
        headers=dev.pairing_headers(created),
    )
    assert r.status_code == 422 and r.json()["field"] == "body.nonce"
    r = dev.http.get(f"/api/v1/device/pairing/{created['session']}", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_complete_needs_consent_and_abort_leaves_nothing(make_guardian, make_device) -> None:
    from protocol.pairing import Reveal

    mum = make_guardian()
    dev = make_device()
    dp, created = dev.offer()
    claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    session = claimed["session"]
    gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]))
    mum.ok("POST", f"/api/v1/pairing/{session}/response", json=gp.response().to_json())
    dev.answer_response(dp, created)
    gp.on_reveal(Reveal.from_json(mum.ok("GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 5})))
    complete = mum.ref.finish_pairing(gp, int(time.time()))
    ids = [i for i, _ in complete.messages]
    body = {
        "complete": complete.to_json(),
        "meta": [{"id": ids[0], "type": "consent", "seq": 0}, {"id": ids[1], "type": "decision", "seq": 0}],
    }
    r = mum.call("POST", f"/api/v1/pairing/{session}/complete", json=body)
    assert r.status_code == 409 and r.json()["type"].endswith("consent-first")
    r = dev.http.post(
        f"/api/v1/device/pairing/{session}/abort",
        json={"reason": "the codes differ"},
        headers=dev.pairing_headers(created),
    )
    assert r.status_code == 200 and r.json()["state"] == "aborted"
    assert mum.ok("GET", "/api/v1/families") == []
    r = mum.call("GET", f"/api/v1/pairing/{session}/reveal")
    assert r.status_code == 409


class KeySwappingRelay(LoopbackServer):
    """A malicious rendezvous in front of the real one: it forwards everything, but gives
    the device its own guardian keys and nonce instead of the real guardian's response."""

    def __init__(self, upstream: str) -> None:
        self.attacker = Identity.generate(is_device=False, label="Mum")
        self.swapped = False

        async def app(scope, receive, send):  # a minimal ASGI reverse proxy
            assert scope["type"] == "http"
            body = await read_body(receive)
            headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in (b"host", b"content-length")}
            query = scope["query_string"].decode()
            url = upstream + scope["path"] + (f"?{query}" if query else "")
            async with httpx.AsyncClient() as client:
                r = await client.request(scope["method"], url, content=body, headers=headers)
            content = r.content
            if scope["path"].endswith("/response") and scope["method"] == "GET" and r.status_code == 200:
                real = Response.from_json(r.json())
                offer = Offer(real.guardian.id, "0" * 64)  # the attacker plays the guardian to the device
                content = json.dumps(GuardianPairing(self.attacker, offer).response().to_json()).encode()
                self.swapped = True
            await send({"type": "http.response.start", "status": r.status_code,
                        "headers": [(b"content-type", r.headers.get("content-type", "application/json").encode())]})
            await send({"type": "http.response.body", "body": content})

        super().__init__(app)


def test_key_swapping_relay_makes_the_sas_differ(make_guardian, server, tmp_path) -> None:
    from protocol.pairing import PairingError, Reveal

    mum = make_guardian()
    relay = KeySwappingRelay(server.url)
    with relay:
        dev = SimDevice(relay.url, tmp_path / "victim")
        dp, created = dev.offer()
        claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
        session = claimed["session"]
        gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]))
        mum.ok("POST", f"/api/v1/pairing/{session}/response", json=gp.response().to_json())
        device_sas = dev.answer_response(dp, created)
        assert relay.swapped
        guardian_sas = gp.on_reveal(
            Reveal.from_json(mum.ok("GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 5}))
        )
        assert device_sas != guardian_sas  # the people comparing the screens see it
        mum.ok(
            "POST",
            f"/api/v1/pairing/{session}/consent",
            json={
                "version": "2026-12",
                "language": "en",
                "accepted": True,
                "usage_reports": True,
                "push_notifications": False,
            },
        )
        complete = mum.ref.finish_pairing(gp, int(time.time()))
        ids = [i for i, _ in complete.messages]
        mum.ok(
            "POST",
            f"/api/v1/pairing/{session}/complete",
            json={
                "complete": complete.to_json(),
                "meta": [
                    {"id": ids[0], "type": "consent", "seq": 0},
                    {"id": ids[1], "type": "decision", "seq": 0},
                ],
            },
        )
        try:
            dev.finish(dp, created, sas_confirmed=False)
        except PairingError:
            pass
        else:
            raise AssertionError("the device accepted a pairing whose SAS was not confirmed")
        dev.close()
    assert mum.ok("GET", "/api/v1/families") == []


def test_qr_mac_binds_the_guardian_keys(make_guardian, make_device) -> None:
    """The QR path: the device verifies the MAC over the guardian's keys (no SAS needed)."""
    mum = make_guardian()
    dev = make_device()
    dp, created = dev.offer()
    qr = dp.qr(created["code"])
    claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": qr.code})
    gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]), qr=qr)
    mum.ok("POST", f"/api/v1/pairing/{claimed['session']}/response", json=gp.response().to_json())
    dev.answer_response(dp, created)
    assert dp.by_qr


def test_pairing_waits_are_long_polls(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    dp, created = dev.offer()
    claimed = mum.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    r = dev.http.get(
        f"/api/v1/device/pairing/{created['session']}/response",
        params={"wait": 0},
        headers=dev.pairing_headers(created),
    )
    assert r.status_code == 204
    gp = mum.ref.start_pairing(Offer.from_json(claimed["offer"]))
    got: list[httpx.Response] = []
    waiter = threading.Thread(
        target=lambda: got.append(
            dev.http.get(
                f"/api/v1/device/pairing/{created['session']}/response",
                params={"wait": 20},
                headers=dev.pairing_headers(created),
            )
        )
    )
    waiter.start()
    start = time.monotonic()
    mum.ok("POST", f"/api/v1/pairing/{claimed['session']}/response", json=gp.response().to_json())
    waiter.join(20)
    assert got and got[0].status_code == 200 and time.monotonic() - start < 5
    del dp


def test_second_device_joins_existing_family(make_guardian, make_device) -> None:
    mum = make_guardian()
    first, second = make_device("ET-10"), make_device("ET-11")
    family = pair(mum, first)
    assert pair(mum, second) == family
    fam = mum.ok("GET", f"/api/v1/families/{family}")
    assert {d["id"] for d in fam["devices"]} == {first.id, second.id} and fam["head_seq"] == 2
    # the first device got the new add_device entry through its queue
    entries = [m for m in first.queue() if m["type"] == "keyring"]
    assert [m["seq"] for m in entries] == [2]
