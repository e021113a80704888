"""The device's API: challenge log-in, tokens that cannot act as a guardian, idempotent
journal uploads checked server-side (a corrupt or forged upload is refused with the first
bad seq), epochs, signed acks, the server's signed time, consent refusal."""

from __future__ import annotations

import base64
import os
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from support.dashboard_clients import SimDevice, pair

from protocol.encoding import b64, unb64
from protocol.keys import Identity
from protocol.server import device_login_message, verify_server_time


def test_login_is_single_use_and_bound_to_origin(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    pair(mum, dev)
    r = dev.http.post("/api/v1/device/auth/challenge", json={"device_id": dev.id})
    nonce = r.json()["nonce"]
    raw = unb64(nonce, "n", 32)
    other_origin = device_login_message("https://evil.example", raw, dev.id)
    body = {"device_id": dev.id, "nonce": nonce, "signature": b64(dev.identity.sign_key.sign(other_origin))}
    r = dev.http.post("/api/v1/device/auth/token", json=body)
    assert r.status_code == 401 and r.json()["field"] == "body.signature"
    good = device_login_message(dev.base_url, raw, dev.id)
    body["signature"] = b64(dev.identity.sign_key.sign(good))
    assert dev.http.post("/api/v1/device/auth/token", json=body).status_code == 401  # the nonce was used
    stranger = Identity.generate(is_device=True)
    r = dev.http.post("/api/v1/device/auth/challenge", json={"device_id": stranger.id})
    assert r.status_code == 200  # unknown devices get a nonce that never verifies
    n2 = r.json()["nonce"]
    sig = stranger.sign_key.sign(device_login_message(dev.base_url, unb64(n2, "n", 32), stranger.id))
    r = dev.http.post("/api/v1/device/auth/token", json={"device_id": stranger.id, "nonce": n2, "signature": b64(sig)})
    assert r.status_code == 401


def test_token_expires(clocked_server, clock, tmp_path) -> None:
    from support.dashboard_clients import GuardianClient

    mum = GuardianClient(clocked_server.url, "m@example.com").signup()
    dev = SimDevice(clocked_server.url, tmp_path / "d")
    pair(mum, dev)
    assert dev.http.get("/api/v1/device/queue", headers=dev.auth).status_code == 200
    clock.advance(clocked_server.state.settings.device_token_ttl)
    r = dev.http.get("/api/v1/device/queue", headers=dev.auth)
    assert r.status_code == 401 and r.json()["field"] == "header.authorization"
    dev.close()


def test_device_token_cannot_act_as_guardian(make_guardian, make_device, server) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    for method, path in (("GET", "/api/v1/families"), ("GET", f"/api/v1/families/{family}/devices/{dev.id}/journal"),
                         ("POST", f"/api/v1/families/{family}/invitations"), ("GET", "/api/v1/session")):
        r = dev.http.request(method, path, headers={**dev.auth, "X-CSRF-Token": "x"})
        assert r.status_code == 401, (path, r.text)
    # nor as a cookie
    import httpx

    with httpx.Client(base_url=server.url, cookies={"mm_session": dev.token}) as as_cookie:
        assert as_cookie.get("/api/v1/families").status_code == 401
    # and a guardian's cookie is no device token
    assert mum.call("GET", "/api/v1/device/queue").status_code == 401


def test_uploads_are_idempotent_and_pending_until_a_checkpoint(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    for i in range(5):
        dev.record("app_blocked", {"app": f"app{i}"})
    full = dev.upload_body(0)
    assert [c["seq"] for c in full["checkpoints"]] == [1, 2, 3, 4, 5]
    part = dict(full, records=full["records"][:3], checkpoints=[])  # no checkpoint: pending
    r = dev.http.post("/api/v1/device/journal", json=part, headers=dev.auth)
    assert r.json()["cursor"] == 0 and r.json()["pending"] == 3 and r.json()["next_seq"] == 4
    rest = dict(full, records=full["records"][3:], checkpoints=full["checkpoints"][4:])
    r = dev.http.post("/api/v1/device/journal", json=rest, headers=dev.auth)
    assert r.json()["cursor"] == 5, r.text
    again = dev.http.post("/api/v1/device/journal", json=full, headers=dev.auth)
    assert again.status_code == 200 and again.json()["cursor"] == 5
    page = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/journal")
    assert [r["seq"] for r in page["records"]] == [1, 2, 3, 4, 5]
    assert page["records"] == full["records"]
    # the guardian checks what it downloaded with the same checker and the device's key
    from protocol.journal import Checkpoint, WireRecord, check_range

    records = [WireRecord(r["seq"], r["segment"], unb64(r["nonce"], "n", 12), unb64(r["ciphertext"], "c"))
               for r in page["records"]]
    cps = [Checkpoint(c["seq"], unb64(c["head"], "h", 32), c["at"], unb64(c["signature"], "s", 64))
           for c in page["checkpoints"]]
    assert check_range(0, bytes(32), records, cps, dev.identity.sign_key.public_key()).verified == 5
    # and opens them with its key
    entries = list(dev.journal.read(mum.ref.identity.seal_key))
    assert [e.event.data["app"] for e in entries] == [f"app{i}" for i in range(5)]
    gap = dict(full, records=full["records"][4:], checkpoints=[])
    gap["records"] = [dict(full["records"][4], seq=9)]
    r = dev.http.post("/api/v1/device/journal", json=gap, headers=dev.auth)
    assert r.status_code == 409 and r.json()["next_seq"] == 6 and r.json()["field"] == "body.records[0].seq"


def _flip(text: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[0] ^= 1
    return b64(bytes(raw))


def test_corrupt_or_forged_uploads_are_refused_with_the_first_bad_seq(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    pair(mum, dev)
    for i in range(6):
        dev.record("dns_blocked", {"domain": f"d{i}.example"})
    body = dev.upload_body(0)
    assert dev.http.post("/api/v1/device/journal", json=dict(body, records=body["records"][:2],
                                                             checkpoints=body["checkpoints"][:2]),
                         headers=dev.auth).json()["cursor"] == 2
    tampered = dict(body)
    tampered["records"] = [dict(r) for r in body["records"]]
    tampered["records"][3]["ciphertext"] = _flip(tampered["records"][3]["ciphertext"])
    r = dev.http.post("/api/v1/device/journal", json=tampered, headers=dev.auth)
    assert r.status_code == 422 and r.json()["first_bad_seq"] == 4, r.text  # records[3] is seq 4
    assert r.json()["field"] == "body.checkpoints[3].head"
    forged = dict(body)
    impostor = Identity.generate(is_device=True)
    from protocol.journal import checkpoint_message

    forged["checkpoints"] = [dict(c, signature=b64(impostor.sign_key.sign(checkpoint_message(
        c["seq"], unb64(c["head"], "h", 32), c["at"])))) for c in body["checkpoints"]]
    r = dev.http.post("/api/v1/device/journal", json=forged, headers=dev.auth)
    assert r.status_code == 422 and r.json()["first_bad_seq"] == 3 and "signature" in r.json()["field"]
    rec = body["records"]
    reordered = dict(body, records=[*rec[:3], rec[4], rec[3], rec[5]])
    r = dev.http.post("/api/v1/device/journal", json=reordered, headers=dev.auth)
    assert r.status_code == 422 and r.json()["first_bad_seq"] == 4 and r.json()["field"] == "body.records[3].seq"
    unknown_segment = dict(body, segments=[])
    unknown_segment["records"] = [dict(r, segment="f" * 32) for r in body["records"]]
    r = dev.http.post("/api/v1/device/journal", json=unknown_segment, headers=dev.auth)
    assert r.status_code == 422
    ok = dev.http.post("/api/v1/device/journal", json=body, headers=dev.auth)
    assert ok.json()["cursor"] == 6


def test_epoch_changes_when_the_server_lost_what_it_acknowledged(make_guardian, make_device, server) -> None:
    mum = make_guardian()
    dev = make_device()
    pair(mum, dev)
    for i in range(3):
        dev.record("lock", {"n": i})
    first = dev.upload(0).json()
    assert first["cursor"] == 3
    # simulate a restore from an older backup: the server forgets the last record
    from sqlalchemy import update

    from dashboard.db.schema import devices, records
    with server.state.db.write() as conn:
        conn.execute(records.delete().where(records.c.device_id == dev.id, records.c.seq == 3))
        conn.execute(update(devices).where(devices.c.id == dev.id).values(cursor=2, pending_seq=2,
                     cursor_hash=conn.execute(records.select().where(records.c.seq == 2)).one().hash))
    r = dev.http.post("/api/v1/device/journal", json=dev.upload_body(3) | {"epoch": first["epoch"], "acked": 3},
                      headers=dev.auth)
    assert r.status_code == 200 and r.json()["epoch"] != first["epoch"] and r.json()["cursor"] == 2
    r = dev.http.post("/api/v1/device/journal", json=dev.upload_body(0) | {"epoch": r.json()["epoch"]},
                      headers=dev.auth)
    assert r.json()["cursor"] == 3


def test_acks_are_verified_and_unknown_messages_named(make_guardian, make_device) -> None:
    from protocol.compose import compose
    from protocol.messages import Ack, AckResult, GrantTime

    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    msg_id, sealed = mum.ref.decide(dev.id, GrantTime(15, None), int(time.time()))
    mum.send(family, dev.id, msg_id, sealed, "decision")
    impostor = Identity.generate(is_device=True)
    env = compose(impostor, family, dev.id, Ack(msg_id, "decision", AckResult.APPLIED, "", 1, 1), int(time.time()))
    r = dev.http.post("/api/v1/device/acks", json={"acks": [env.to_json()]}, headers=dev.auth)
    assert r.status_code == 422 and r.json()["field"] == "body.acks[0].kid"
    r = dev.ack(os.urandom(16).hex(), "decision")
    assert r.json()["results"][0]["status"] == "unknown"
    r = dev.ack(msg_id, "decision", AckResult.REFUSED, reason="expired")
    assert r.json()["results"][0]["status"] == "refused"
    d = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/messages/{msg_id}")
    assert d["status"] == "refused" and d["ack"]["kid"] == dev.id


def test_signed_time(make_device, server) -> None:
    dev = make_device()
    nonce = os.urandom(16)
    r = dev.http.get("/api/v1/device/time", params={"nonce": b64(nonce)})
    out = r.json()
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(out["server_key"]))
    verify_server_time(key, out["time"], nonce, unb64(out["signature"], "s", 64))
    assert abs(out["time"] - time.time()) < 60
    assert dev.http.get("/api/v1/device/time", params={"nonce": "short"}).status_code == 422


def test_refused_consent_keeps_uploads_off_and_requests_on(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev, accepted=False)
    dev.record("lock", {"x": 1})
    r = dev.upload(0)
    assert r.status_code == 403 and r.json()["type"].endswith("no-consent")
    request_id, r = dev.send_request(15, "please")
    assert r.status_code == 200
    got = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/requests")
    assert [g["id"] for g in got] == [request_id]
    # a later acceptance turns reports on
    mum.ok("POST", f"/api/v1/families/{family}/devices/{dev.id}/consent",
           json={"version": "2026-12", "language": "zh-CN", "accepted": True, "usage_reports": True,
                 "push_notifications": False})
    assert dev.upload(0).status_code == 200
    r = mum.call("POST", f"/api/v1/families/{family}/devices/{dev.id}/consent",
                 json={"version": "2020-01", "language": "en", "accepted": True, "usage_reports": True,
                       "push_notifications": False})
    assert r.status_code == 409 and r.json()["field"] == "body.version"


def test_summaries_replace_by_day_and_catalogue(make_guardian, make_device) -> None:
    from protocol.compose import compose, seal_to_guardians
    from protocol.messages import Catalogue, CatalogueApp, Summary
    from protocol.sealing import catalogue_ctx, summary_ctx

    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    ring = dev.keyring

    def summary(used: int) -> dict:
        value = Summary("2026-12-01", "Asia/Shanghai", used, 3600, {"game": used}, tuple([0] * 24), {}, {}, (), 0,
                        {}, 1)
        env = compose(dev.identity, family, dev.id, value, int(time.time()))
        return seal_to_guardians(env, summary_ctx(family, dev.id, "2026-12-01"), ring).to_json()
    for used in (60, 120):
        r = dev.http.put("/api/v1/device/summaries", json={"day": "2026-12-01", "sealed": summary(used)},
                         headers=dev.auth)
        assert r.status_code == 200, r.text
    r = dev.http.put("/api/v1/device/summaries", json={"day": "2026-12-02", "sealed": summary(5)}, headers=dev.auth)
    assert r.status_code == 422 and r.json()["field"] == "body.sealed.ctx"
    got = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/summaries", params={"from": "2026-12-01"})
    assert len(got) == 1
    _body, payload = mum.ref.open_from_device(got[0]["sealed"], summary_ctx(family, dev.id, "2026-12-01"), dev.id)
    assert payload.used_seconds == 120
    cat = compose(dev.identity, family, dev.id, Catalogue((CatalogueApp("org.example.game", "Game", ("games",)),)),
                  int(time.time()))
    sealed = seal_to_guardians(cat, catalogue_ctx(family, dev.id), ring).to_json()
    assert dev.http.put("/api/v1/device/catalogue", json={"sealed": sealed}, headers=dev.auth).status_code == 200
    got = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/catalogue")
    assert mum.ref.open_from_device(got["sealed"], catalogue_ctx(family, dev.id), dev.id)[1].apps[0].name == "Game"
