"""Data rights and audit: what is held, export, deletion and unpairing with a receipt
signed by the server's key, the audit trail of every read, and the retention purge."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from support.dashboard_clients import GuardianClient, SimDevice, pair

from protocol.messages import AckResult, DecisionKind, DeleteData
from protocol.server import verify_receipt


def _data(dev: SimDevice, n: int = 3) -> None:
    for i in range(n):
        dev.record("dns_blocked", {"domain": f"site{i}.example"})
    assert dev.upload(0).status_code == 200
    dev.send_request(10, "more please")


def test_holdings_export_and_audit(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    _data(dev)
    base = f"/api/v1/families/{family}/devices/{dev.id}"
    held = mum.ok("GET", f"{base}/holdings")["kinds"]
    assert held["journal_records"] == 3 and held["requests"] == 1 and held["consents"] == 1
    out = mum.ok("GET", f"{base}/export")
    assert len(out["journal"]["records"]) == 3 and len(out["requests"]) == 1 and out["consents"][0]["accepted"]
    mum.ok("GET", f"{base}/journal")
    mum.ok("GET", f"{base}/requests", params={"status": "open"})
    actions = [a["action"] for a in mum.ok("GET", f"/api/v1/families/{family}/audit")]
    assert actions == ["read_requests", "read_journal", "export"]
    entry = mum.ok("GET", f"/api/v1/families/{family}/audit")[1]
    assert entry["kid"] == mum.kid and entry["device"] == dev.id and entry["detail"]["records"] == 3


def test_delete_data_queues_a_server_signed_receipt(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    _data(dev)
    base = f"/api/v1/families/{family}/devices/{dev.id}"
    decision_id, sealed = mum.ref.decide(dev.id, DeleteData(DecisionKind.DELETE_DATA, "guardian asked"),
                                         int(time.time()))
    mum.send(family, dev.id, decision_id, sealed, "decision")
    out = mum.ok("DELETE", f"{base}/data", params={"decision": decision_id})
    assert out["deleted"] == {"journal_records": 3, "summaries": 0, "requests": 1, "catalogue": 0}
    held = mum.ok("GET", f"{base}/holdings")["kinds"]
    assert held["journal_records"] == 0 and held["requests"] == 0
    queue = dev.queue()
    receipt = next(m for m in queue if m["type"] == "server_receipt")
    pinned = Ed25519PublicKey.from_public_bytes(bytes.fromhex(dev.server_key))
    value = verify_receipt(receipt["receipt"], pinned)
    assert value.device == dev.id and value.decision == decision_id and value.deleted["journal_records"] == 3
    # the journal continues after the device's own deletion, from the acknowledged head
    dev.journal.delete_all("guardian asked")
    dev.record("lock", {"after": "deletion"})
    r = dev.upload(0)
    assert r.status_code == 200 and r.json()["cursor"] == 4, r.text
    assert mum.ok("GET", f"/api/v1/families/{family}/audit")[0]["action"] == "delete"


def test_unpair_deletes_and_forgets_the_device(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    _data(dev)
    base = f"/api/v1/families/{family}/devices/{dev.id}"
    decision_id, sealed = mum.ref.decide(dev.id, DeleteData(DecisionKind.UNPAIR, "new tablet"), int(time.time()))
    mum.send(family, dev.id, decision_id, sealed, "decision")
    out = mum.ok("POST", f"{base}/unpair", json={"decision": decision_id})
    assert out["deleted"]["journal_records"] == 3
    assert mum.ok("GET", base)["status"] == "unpairing"
    assert dev.upload(0).status_code == 403  # only the queue and acks remain
    kinds = [m["type"] for m in dev.queue()]
    assert kinds == ["decision", "server_receipt"]
    receipt = dev.queue()[1]
    dev.ack(decision_id, "decision")
    assert dev.ack(receipt["id"], "receipt", AckResult.APPLIED).status_code == 200
    assert mum.call("GET", base).status_code == 404
    assert dev.http.get("/api/v1/device/queue", headers=dev.auth).status_code == 401
    # the device may pair again (a fresh start)
    assert mum.ok("GET", f"/api/v1/families/{family}")["devices"] == []


def test_retention_purge(clocked_server, clock, tmp_path) -> None:
    from dashboard.retention import purge_once

    mum = GuardianClient(clocked_server.url, "m@example.com").signup()
    dev = SimDevice(clocked_server.url, tmp_path / "d")
    family = pair(mum, dev)
    _data(dev)
    clock.advance(29 * 86_400)
    first = purge_once(clocked_server.state)
    assert first["journal_records"] == 0 and first["events"] == 0
    assert first["sessions"] == 1 and first["pairings"] == 1  # mum's 7-day session, the finished pairing
    clock.advance(2 * 86_400)
    dev.login()
    assert mum.login().status_code == 200  # the 7-day session ended meanwhile
    dev.record("lock", {"late": True})
    second = purge_once(clocked_server.state)
    assert second["journal_records"] == 3 and second["events"] >= 2  # paired, request
    held = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}/holdings")["kinds"]
    assert held["journal_records"] == 0
    r = dev.upload(3)  # the chain goes on from the purged head
    assert r.status_code == 200 and r.json()["cursor"] == 4 and r.json()["base_seq"] == 3
    dev.close()
