"""The main path through the real server: sign up, pair through the rendezvous, upload,
queue a policy, ack it, see it applied."""

from __future__ import annotations

import json
import time

from support.dashboard_clients import pair, policy


def test_pair_upload_policy_ack(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    fams = mum.ok("GET", "/api/v1/families")
    assert [f["id"] for f in fams] == [family]
    assert fams[0]["devices"][0]["id"] == dev.id
    seqs = dev.record("lock", {"reason": "budget"}) + dev.record("app_blocked", {"app": "game"})
    r = dev.upload(0)
    assert r.status_code == 200, r.text
    assert r.json()["cursor"] == seqs[-1]
    again = dev.upload(0)
    assert again.json()["cursor"] == seqs[-1]
    msg_id, sealed = mum.ref.policy(dev.id, policy(2), int(time.time()))
    r = mum.send(family, dev.id, msg_id, sealed, "policy", 2, retention_days=30)
    assert r.status_code == 201, r.text
    queue = dev.queue()
    assert [m["id"] for m in queue] == [msg_id]
    r = dev.ack(msg_id, "policy", version=2)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied", r.text
    status = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}")
    assert status["policy_applied"] == 2 and status["policy_applied_by"] == mum.kid
    deliveries = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/messages")
    ack = mum.ref.verify_ack(json.dumps(deliveries[0]["ack"]).encode(), dev.id)
    assert ack.message == msg_id and ack.policy_version == 2


def test_a_delivery_carries_its_sealed_message_for_the_guardians(make_guardian, make_device) -> None:
    """The web app reopens the policy in force and the guardian-code secret from the
    delivery history: the sealed blob is served back, and the guardian can open it."""
    from protocol.messages import PolicyMessage, SetGuardianCode

    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev, policy_version=None)
    msg_id, sealed = mum.ref.policy(dev.id, policy(3), int(time.time()))
    assert mum.send(family, dev.id, msg_id, sealed, "policy", 3, retention_days=30).status_code == 201
    deliveries = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/messages")
    assert deliveries[0]["id"] == msg_id and deliveries[0]["sealed"] == sealed.to_json()
    from protocol.envelope import Purpose, parse, verify
    from protocol.messages import parse_payload
    from protocol.sealing import guardian_message_ctx, open_sealed, sealed_from_json

    opened = {}
    for d in deliveries:
        ctx = guardian_message_ctx(family, dev.id, d["id"])
        inner = open_sealed(sealed_from_json(d["sealed"]), ctx, mum.ref.identity.seal_key)
        body = verify(parse(inner), mum.ref.identity.public.sign_key, Purpose.GUARDIAN)
        opened[d["id"]] = parse_payload(body)
    assert opened[msg_id] == PolicyMessage(policy(3))
    assert any(isinstance(p, SetGuardianCode) for p in opened.values())  # sent at pairing
    one = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/messages/{msg_id}")
    assert one["sealed"] == sealed.to_json()
