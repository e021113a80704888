"""Two server processes on one PostgreSQL: a decision posted through process A wakes a
device connected to process B within 1 s (LISTEN/NOTIFY), and a request posted through B
reaches a guardian's socket on A."""

from __future__ import annotations

import json
import time

import pytest
from support.dashboard_clients import GuardianClient, SimDevice, pair
from support.dashboard_server import ProcessServer
from websockets.sync.client import connect

from dashboard.migrations import upgrade
from protocol.messages import GrantTime

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_processes(pg_cluster, tmp_path):
    url = pg_cluster.new_database()
    upgrade(url.replace("postgresql://", "postgresql+psycopg://"))
    a = ProcessServer(url, tmp_path / "a.log").start()
    b = ProcessServer(url, tmp_path / "b.log").start()
    yield a, b
    a.stop()
    b.stop()
    pg_cluster.drop_database(url)


def test_decision_through_a_wakes_device_on_b(two_processes, tmp_path) -> None:
    a, b = two_processes
    mum = GuardianClient(a.url, "mum@example.com").signup()
    dev = SimDevice(b.url, tmp_path / "dev")
    family = pair(mum, dev)
    latencies = []
    with connect(b.url.replace("http://", "ws://") + "/api/v1/device/push") as ws:
        ws.send(json.dumps({"token": dev.token}))
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        for _ in range(5):
            msg_id, sealed = mum.ref.decide(dev.id, GrantTime(15, None), int(time.time()))
            start = time.monotonic()
            assert mum.send(family, dev.id, msg_id, sealed, "decision").status_code == 201
            while json.loads(ws.recv(timeout=5))["type"] != "wake":
                pass
            latencies.append(time.monotonic() - start)
            assert msg_id in [m["id"] for m in dev.queue()]
    print(f"cross-process wake latencies (s): {[round(x, 4) for x in latencies]}")
    assert max(latencies) < 1.0
    # the other way: a child's request through B reaches the guardian's socket on A
    cookie = mum.http.cookies.get("mm_session")
    after = mum.ok("GET", "/api/v1/events")["next_after"]
    with connect(a.url.replace("http://", "ws://") + "/api/v1/push",
                 additional_headers={"Cookie": f"mm_session={cookie}"}) as ws:
        ws.send(json.dumps({"csrf": mum.csrf, "after": after}))
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        request_id, r = dev.send_request(30, "more time please")
        assert r.status_code == 200
        event = json.loads(ws.recv(timeout=5))
        while event["event"]["kind"] != "request":
            event = json.loads(ws.recv(timeout=5))
        assert event["event"]["data"]["id"] == request_id
    dev.close()
