"""Web Push through the provider interface, against a mock push service on loopback that
decrypts what it gets (RFC 8291) and checks the VAPID signature (RFC 8292)."""

from __future__ import annotations

import json
import os
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from support.dashboard_clients import pair
from support.loopback import LoopbackServer, read_body

from dashboard.webpush.ece import decrypt
from protocol.encoding import b64, unb64


class MockPushService(LoopbackServer):
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 201
        self.got = threading.Event()

        async def app(scope, receive, send):
            body = await read_body(receive)
            self.received.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
            self.got.set()
            await send({"type": "http.response.start", "status": self.status, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        super().__init__(app)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/push/{os.urandom(8).hex()}"


def verify_vapid(header: str, public_b64: str, audience: str) -> dict:
    assert header.startswith("vapid t=")
    token, key = header[len("vapid t="):].split(", k=")
    assert key == public_b64
    head, claims, sig = token.split(".")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(public_b64, "k", 65))
    raw = unb64(sig, "sig", 64)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    out = json.loads(unb64(claims, "claims"))
    assert out["aud"] == audience and out["exp"] > time.time()
    return out


def test_request_notifies_the_guardian_by_web_push(make_guardian, make_device, server) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    browser_key = ec.generate_private_key(ec.SECP256R1())
    p256dh = browser_key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    vapid = mum.ok("GET", "/api/v1/webpush/key")["public_key"]
    push = MockPushService()
    with push:
        endpoint = push.endpoint
        mum.ok("POST", "/api/v1/webpush/subscriptions",
               json={"endpoint": endpoint, "keys": {"p256dh": b64(p256dh), "auth": b64(auth)}})
        request_id, r = dev.send_request(20, "can I finish the level")
        assert r.status_code == 200
        assert push.got.wait(10)
        headers, body = push.received[0]
        assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) > 0
        verify_vapid(headers["authorization"], vapid, f"http://127.0.0.1:{push.port}")
        payload = json.loads(decrypt(body, browser_key, auth))
        assert payload == {"type": "request", "family": family, "device": dev.id, "kind": "more_time",
                           "id": request_id}
        assert b"finish the level" not in body
        # a subscription the push service says is gone is forgotten
        push.status = 410
        push.got.clear()
        dev.send_request(5, "again")
        assert push.got.wait(10)
        deadline = time.monotonic() + 10
        state = server.state
        from sqlalchemy import func, select

        from dashboard.db.schema import webpush_subscriptions
        while time.monotonic() < deadline:
            with state.db.read() as conn:
                if conn.execute(select(func.count()).select_from(webpush_subscriptions)).scalar() == 0:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the gone subscription was not deleted")


def test_subscription_endpoint_must_be_https(make_guardian, server) -> None:
    mum = make_guardian()
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    r = mum.call("POST", "/api/v1/webpush/subscriptions",
                 json={"endpoint": "http://push.example.com/x", "keys": {"p256dh": b64(key), "auth": b64(bytes(16))}})
    assert r.status_code == 422 and r.json()["field"] == "body.endpoint"
