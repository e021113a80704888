"""The keyring as the server stores it, and a second guardian: the server verifies every
entry before storing it, admits an invited guardian only on an existing guardian's
add_guardian, and a guardian removed from the keyring can sign nothing it stores."""

from __future__ import annotations

import time

from support.dashboard_clients import pair, policy

from protocol.envelope import envelope_from_json
from protocol.keyring import Op, entry_hash
from protocol.messages import GrantTime


def invite_and_admit(mum, dad, family: str) -> str:
    created = mum.ok("POST", f"/api/v1/families/{family}/invitations")
    head = mum.ok("GET", f"/api/v1/families/{family}")["head_hash"]
    accepted = dad.ok("POST", "/api/v1/invitations/accept", json={"token": created["token"]})
    assert accepted["status"] == "accepted"
    pending = mum.ok("GET", f"/api/v1/families/{family}/invitations")
    invitee = pending[0]["invitee"]
    assert invitee["kid"] == dad.kid  # mum's app compares the fingerprint with dad in person
    entry = mum.ref.add_guardian(dad.ref.identity.public, int(time.time()))
    mum.ok("POST", f"/api/v1/families/{family}/keyring", json={"entry": entry.to_json()})
    dad.ref.adopt_keyring(dad.keyring_entries(family), head)
    return head


def test_second_guardian_is_admitted_by_a_signed_entry(make_guardian, make_device) -> None:
    mum, dad = make_guardian(), make_guardian("Dad")
    dev = make_device()
    family = pair(mum, dev)
    created = mum.ok("POST", f"/api/v1/families/{family}/invitations")
    dad.ok("POST", "/api/v1/invitations/accept", json={"token": created["token"]})
    assert dad.call("GET", f"/api/v1/families/{family}").status_code == 404  # accepted is not admitted
    assert dad.ok("GET", "/api/v1/families") == []
    entry = mum.ref.add_guardian(dad.ref.identity.public, int(time.time()))
    mum.ok("POST", f"/api/v1/families/{family}/keyring", json={"entry": entry.to_json()})
    assert [f["id"] for f in dad.ok("GET", "/api/v1/families")] == [family]
    assert dad.ok("GET", "/api/v1/invitations/mine")[0]["status"] == "admitted"
    assert dad.call("POST", "/api/v1/invitations/accept", json={"token": created["token"]}).status_code == 404
    # the device receives the entry through its queue
    queued = [m for m in dev.queue() if m["type"] == "keyring"]
    assert queued and entry_hash(envelope_from_json(queued[0]["entry"])) == entry_hash(entry)


def test_server_refuses_entries_it_cannot_verify(make_guardian, make_device) -> None:
    mum, dad, eve = make_guardian(), make_guardian("Dad"), make_guardian("Eve")
    family = pair(mum, make_device())
    url = f"/api/v1/families/{family}/keyring"
    # not invited: a valid entry for unknown keys is refused (the server can refuse to relay)
    ring = mum.ref.keyring
    entry = ring.entry(mum.ref.identity, Op.ADD_GUARDIAN, party=eve.ref.identity.public, now=int(time.time()))
    r = mum.call("POST", url, json={"entry": entry.to_json()})
    assert r.status_code == 409 and r.json()["type"].endswith("not-invited")
    # garbage: a flipped signature
    bad = entry.to_json()
    bad["sig"] = ("A" if bad["sig"][0] != "A" else "B") + bad["sig"][1:]
    r = mum.call("POST", url, json={"entry": bad})
    assert r.status_code == 422 and r.json()["field"].startswith("body.entry")
    # a fork: an entry that does not name the head
    stale = mum.ref.keyring.entries[-1].to_json()
    r = mum.call("POST", url, json={"entry": stale})
    assert r.status_code == 409 and r.json()["type"].endswith("stale-keyring")
    # signed by someone else's key (eve's account posts mum's entry)
    created = mum.ok("POST", f"/api/v1/families/{family}/invitations")
    dad.ok("POST", "/api/v1/invitations/accept", json={"token": created["token"]})
    entry = ring.entry(mum.ref.identity, Op.ADD_GUARDIAN, party=dad.ref.identity.public, now=int(time.time()))
    assert eve.call("POST", url, json={"entry": entry.to_json()}).status_code == 404  # not a member
    # a wrong envelope version, named
    r = mum.call("POST", url, json={"entry": entry.to_json() | {"v": 2}})
    assert r.status_code == 422 and r.json()["field"] == "body.entry.v"
    assert mum.call("POST", url, json={"entry": entry.to_json()}).status_code == 201


def test_removed_guardian_can_sign_nothing_the_server_stores(make_guardian, make_device) -> None:
    mum, dad = make_guardian(), make_guardian("Dad")
    dev = make_device()
    family = pair(mum, dev)
    invite_and_admit(mum, dad, family)
    # dad is active: he can queue a decision
    now = int(time.time())
    msg_id, sealed = dad.ref.decide(dev.id, GrantTime(15, None), now)
    assert dad.send(family, dev.id, msg_id, sealed, "decision").status_code == 201
    # mum removes dad
    entry = mum.ref.remove_guardian(dad.kid, now)
    mum.ok("POST", f"/api/v1/families/{family}/keyring", json={"entry": entry.to_json()})
    assert dad.call("GET", f"/api/v1/families/{family}").status_code == 404
    msg_id, sealed = dad.ref.decide(dev.id, GrantTime(60, None), now)
    r = dad.send(family, dev.id, msg_id, sealed, "decision")
    assert r.status_code == 404
    r = dad.send(family, dev.id, msg_id, sealed, "policy", 9, retention_days=30)
    assert r.status_code == 404
    # dad's keyring (still naming himself) cannot extend the chain: his key is not active
    dad.ref.keyring = mum.ref.keyring
    forged = mum.ref.keyring.entry(dad.ref.identity, Op.REMOVE_GUARDIAN, target=mum.kid, now=now)
    assert dad.call("POST", f"/api/v1/families/{family}/keyring", json={"entry": forged.to_json()}).status_code == 404
    r = mum.call("POST", f"/api/v1/families/{family}/keyring", json={"entry": forged.to_json()})
    assert r.status_code == 403 and r.json()["field"] == "body.entry.kid"
    # the devices got both entries, in order
    seqs = [m["seq"] for m in dev.queue() if m["type"] == "keyring"]
    assert seqs == [2, 3]


def test_policy_versions_conflict_between_guardians(make_guardian, make_device) -> None:
    mum, dad = make_guardian(), make_guardian("Dad")
    dev = make_device()
    family = pair(mum, dev)
    invite_and_admit(mum, dad, family)
    now = int(time.time())
    a_id, a = mum.ref.policy(dev.id, policy(2), now)
    b_id, b = dad.ref.policy(dev.id, policy(2), now)
    assert mum.send(family, dev.id, a_id, a, "policy", 2, retention_days=30).status_code == 201
    r = dad.send(family, dev.id, b_id, b, "policy", 2, retention_days=30)
    assert r.status_code == 409 and r.json()["latest_seq"] == 2 and r.json()["field"] == "body.seq"
    c_id, c = dad.ref.policy(dev.id, policy(3), now)
    assert dad.send(family, dev.id, c_id, c, "policy", 3, retention_days=14).status_code == 201
    assert mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}")["retention_days"] == 14
    # a blob sealed for another message id is refused (the context binds it)
    d_id, d = mum.ref.policy(dev.id, policy(4), now)
    r = mum.send(family, dev.id, "ab" * 16, d, "policy", 4, retention_days=30)
    assert r.status_code == 422 and r.json()["field"] == "body.sealed.ctx"
    r = mum.send(family, dev.id, d_id, d, "policy", 4)
    assert r.status_code == 422 and r.json()["field"] == "body.retention_days"
