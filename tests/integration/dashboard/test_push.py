"""Push: the device's WebSocket (token in the first message, wake-ups, heartbeat), the
long-poll fallback, and the guardian's socket and event feed."""

from __future__ import annotations

import json
import threading
import time

import pytest
from support.dashboard_clients import pair
from support.dashboard_server import ThreadServer, server_settings
from websockets.sync.client import connect

from protocol.messages import GrantTime


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


def recv(ws, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


@pytest.fixture
def fast_heartbeat(db_url):
    srv = ThreadServer(server_settings(db_url, heartbeat=0.2)).start()
    yield srv
    srv.stop()


def test_device_socket_wakes_on_a_decision(make_guardian, make_device, server) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    with connect(ws_url(server.url, "/api/v1/device/push")) as ws:
        ws.send(json.dumps({"token": dev.token}))
        assert recv(ws) == {"type": "hello", "device": dev.id}
        msg_id, sealed = mum.ref.decide(dev.id, GrantTime(15, None), int(time.time()))
        start = time.monotonic()
        assert mum.send(family, dev.id, msg_id, sealed, "decision").status_code == 201
        assert recv(ws)["type"] == "wake"
        assert time.monotonic() - start < 1.0
        assert [m["id"] for m in dev.queue()] == [msg_id]  # the push is a hint; the queue is the truth


def test_device_socket_refuses_a_bad_token_and_a_url_token(make_guardian, make_device, server) -> None:
    from websockets.exceptions import ConnectionClosed

    with connect(ws_url(server.url, "/api/v1/device/push")) as ws:
        ws.send(json.dumps({"token": "d1." + "0" * 32 + ".9999999999.AAAA"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    mum = make_guardian()
    dev = make_device()
    pair(mum, dev)
    with connect(ws_url(server.url, f"/api/v1/device/push?token={dev.token}")) as ws:
        ws.send("{}")  # the URL is never read
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_heartbeat_and_pong(make_guardian, fast_heartbeat, tmp_path) -> None:
    from support.dashboard_clients import GuardianClient, SimDevice

    mum = GuardianClient(fast_heartbeat.url, "m@example.com").signup()
    dev = SimDevice(fast_heartbeat.url, tmp_path / "d")
    pair(mum, dev)
    with connect(ws_url(fast_heartbeat.url, "/api/v1/device/push")) as ws:
        ws.send(json.dumps({"token": dev.token}))
        recv(ws)
        assert recv(ws, 3) == {"type": "ping"}
        ws.send('{"type":"ping"}')
        seen = [recv(ws, 3)["type"] for _ in range(2)]
        assert "pong" in seen
    dev.close()


def test_long_poll_answers_when_a_message_is_queued(make_guardian, make_device) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    got: list[list[dict]] = []
    poller = threading.Thread(target=lambda: got.append(dev.queue(wait=20)))
    poller.start()
    time.sleep(0.3)  # give the poll time to start waiting (the answer is bounded either way)
    msg_id, sealed = mum.ref.decide(dev.id, GrantTime(30, None), int(time.time()))
    start = time.monotonic()
    mum.send(family, dev.id, msg_id, sealed, "decision")
    poller.join(20)
    assert got and [m["id"] for m in got[0]] == [msg_id] and time.monotonic() - start < 5


def test_guardian_socket_and_feed_see_requests_and_acks(make_guardian, make_device, server) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    after = mum.ok("GET", "/api/v1/events")["next_after"]
    cookie = mum.http.cookies.get("mm_session")
    with connect(ws_url(server.url, "/api/v1/push"), additional_headers={"Cookie": f"mm_session={cookie}"}) as ws:
        ws.send(json.dumps({"csrf": mum.csrf, "after": after}))
        assert recv(ws)["type"] == "hello"
        request_id, r = dev.send_request(15, "the homework needs more time")
        assert r.status_code == 200
        event = recv(ws)
        assert event["type"] == "event" and event["event"]["kind"] == "request"
        assert event["event"]["data"] == {"id": request_id, "kind": "more_time"}
        assert event["event"]["family"] == family
    feed = mum.ok("GET", "/api/v1/events", params={"after": after})
    assert [e["kind"] for e in feed["events"]] == ["request"]
    assert mum.ok("GET", "/api/v1/events", params={"after": feed["next_after"], "wait": 0})["events"] == []


def test_guardian_socket_needs_the_csrf_token(make_guardian, server) -> None:
    from websockets.exceptions import ConnectionClosed

    mum = make_guardian()
    cookie = mum.http.cookies.get("mm_session")
    with connect(ws_url(server.url, "/api/v1/push"), additional_headers={"Cookie": f"mm_session={cookie}"}) as ws:
        ws.send(json.dumps({"csrf": "wrong"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
