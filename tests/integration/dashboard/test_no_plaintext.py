"""No plaintext on the server: an end-to-end run (the reference guardian client and a
simulated device writing the agent's real Journal) with known event strings and child's
notes, then the SQLite file and its WAL, a pg_dump, and the server's log are searched for
them: nothing found. A control string that the server does hold in clear (the guardian's
e-mail) is found, so the search itself works."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.dashboard_clients import GuardianClient, SimDevice, pair, policy
from support.dashboard_server import ProcessServer

from dashboard.migrations import upgrade
from protocol.compose import compose, seal_to_guardians
from protocol.messages import Catalogue, CatalogueApp, GrantTime, Summary
from protocol.sealing import catalogue_ctx, summary_ctx

SECRETS = [
    "xylophone-pancake-7781.example",  # a blocked domain (journal event)
    "MarmaladeQuest",  # an app the child used (journal, summary, catalogue)
    "I feel sad about the group chat 5521",  # the child's note in a report/request
    "bedtime-rule-marker-9043",  # something in the guardian's policy
]


def _run(base_url: str, tmp: Path) -> tuple[GuardianClient, SimDevice]:
    mum = GuardianClient(base_url, "mum.control@example.com").signup()
    dev = SimDevice(base_url, tmp / "device")
    family = pair(mum, dev)
    dev.record("dns_blocked", {"domain": SECRETS[0]})
    dev.record("app_blocked", {"app": SECRETS[1]})
    dev.record("report", {"note": SECRETS[2]})
    assert dev.upload(0).status_code == 200
    ring = dev.keyring
    summary = Summary("2026-12-01", "Asia/Shanghai", 600, 3600, {SECRETS[1]: 600}, tuple([0] * 24), {},
                      {SECRETS[0]: 3}, (), 1, {}, 1)
    env = compose(dev.identity, family, dev.id, summary, int(time.time()))
    sealed = seal_to_guardians(env, summary_ctx(family, dev.id, "2026-12-01"), ring).to_json()
    assert dev.http.put("/api/v1/device/summaries", json={"day": "2026-12-01", "sealed": sealed},
                        headers=dev.auth).status_code == 200
    cat = compose(dev.identity, family, dev.id, Catalogue((CatalogueApp("org.example.mq", SECRETS[1], ("games",)),)),
                  int(time.time()))
    assert dev.http.put("/api/v1/device/catalogue", json={"sealed": seal_to_guardians(
        cat, catalogue_ctx(family, dev.id), ring).to_json()}, headers=dev.auth).status_code == 200
    request_id, r = dev.send_request(30, SECRETS[2])
    assert r.status_code == 200
    pol = policy(2) | {"guardian_note": SECRETS[3]}
    msg_id, sealed_policy = mum.ref.policy(dev.id, pol, int(time.time()))
    assert mum.send(family, dev.id, msg_id, sealed_policy, "policy", 2, retention_days=30).status_code == 201
    grant_id, grant = mum.ref.decide(dev.id, GrantTime(30, request_id), int(time.time()))
    mum.send(family, dev.id, grant_id, grant, "decision")
    for m in dev.queue():
        dev.ack(m["id"], m["type"], version=2 if m["type"] == "policy" else 0)
    # the guardian reads everything back and can open it (so the strings really were there)
    base = f"/api/v1/families/{family}/devices/{dev.id}"
    export = mum.ok("GET", f"{base}/export")
    opened = [e.event.data for e in dev.journal.read(mum.ref.identity.seal_key)]
    assert {"domain": SECRETS[0]} in opened
    _b, req = mum.ref.open_from_device(export["requests"][0]["sealed"],
                                       f"request/{family}/{dev.id}/{request_id}", dev.id)
    assert req.note == SECRETS[2]
    mum.ok("GET", f"{base}/journal")
    mum.ok("GET", f"{base}/summaries")
    mum.ok("GET", f"{base}/catalogue")
    return mum, dev


def _run_served(url: str, tmp: Path) -> bytes:
    """The end-to-end run against `minormode-dashboard serve` in a subprocess; its log."""
    upgrade(url.replace("postgresql://", "postgresql+psycopg://"))
    log = tmp / "server.log"
    srv = ProcessServer(url, log).start()
    try:
        mum, dev = _run(srv.url, tmp)
        dev.close()
        mum.close()
    finally:
        srv.stop()
    return log.read_bytes()


def _assert_absent(blobs: dict[str, bytes]) -> None:
    for name, data in blobs.items():
        for secret in SECRETS:
            for form in (secret.encode(), json.dumps(secret).encode(), secret.encode("utf-16-le")):
                assert form not in data, f"{secret!r} found in {name}"


def test_no_plaintext_in_sqlite_and_logs(tmp_path) -> None:
    db = tmp_path / "dash.sqlite"
    log = _run_served(f"sqlite:///{db}", tmp_path)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("dash.sqlite")}
    assert "dash.sqlite" in files
    assert b"mum.control@example.com" in files["dash.sqlite"] + files.get("dash.sqlite-wal", b"")  # control
    assert b"POST /api/v1/device/journal" in log  # the log has the access lines
    _assert_absent(files | {"server.log": log})


@pytest.mark.postgres
def test_no_plaintext_in_pg_dump_and_logs(pg_cluster, tmp_path) -> None:
    url = pg_cluster.new_database()
    log = _run_served(url, tmp_path)
    dump = pg_cluster.dump(url)
    assert b"mum.control@example.com" in dump
    pg_log = pg_cluster.directory / "server.log"
    _assert_absent({"pg_dump": dump, "server.log": log, "postgresql.log": pg_log.read_bytes()})
    pg_cluster.drop_database(url)
