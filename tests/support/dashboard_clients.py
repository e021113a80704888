"""Test clients of the dashboard: a guardian (the reference guardian client of `protocol`
behind a browser-like HTTP session) and a simulated device (its identity, the agent's real
Journal, and the sync calls the device makes; issue 14 builds the device's real client).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import account
from protocol.compose import compose, seal_to_guardians
from protocol.encoding import b64
from protocol.guardian import ReferenceGuardian
from protocol.keyring import Keyring, entry_hash
from protocol.keys import Identity
from protocol.messages import Ack, AckResult, ChildRequest, Paired, RequestKind
from protocol.pairing import Complete, DevicePairing, PairingResult, Response
from protocol.sealing import request_ctx
from protocol.server import device_login_message

PASSWORD = "correct horse battery staple"


class GuardianClient:
    def __init__(self, base_url: str, email: str, *, label: str = "Mum", password: str = PASSWORD,
                 verify: str | bool = True) -> None:
        self.base_url = base_url
        self.email = email
        self.password = password
        self.http = httpx.Client(base_url=base_url, timeout=60, verify=verify)
        self.ref = ReferenceGuardian(Identity.generate(is_device=False, label=label))
        self.csrf = ""
        self.recovery = account.new_recovery_key()
        self.kdf = account.KdfParams.new(iterations=100_000)

    @property
    def kid(self) -> str:
        return self.ref.kid

    def signup_body(self) -> dict[str, Any]:
        keys = account.derive(self.password, self.kdf)
        pub = self.ref.identity.public
        return {
            "email": self.email,
            "kdf": self.kdf.to_json(),
            "auth": b64(keys.auth),
            "guardian": {"kid": pub.id, "sign": pub.sign.hex(), "seal": pub.seal.hex(), "label": pub.label},
            "wrapped_keys": account.wrap_identity(self.ref.identity, keys.wrap),
            "recovery_wrapped_keys": account.wrap_identity(
                self.ref.identity, account.recovery_wrap(self.recovery)
            ),
            "recovery_auth": b64(account.recovery_auth(self.recovery)),
            "language": "en",
        }

    def signup(self) -> GuardianClient:
        r = self.http.post("/api/v1/accounts", json=self.signup_body())
        assert r.status_code == 201, r.text
        self.csrf = r.json()["csrf_token"]
        return self

    def login(self, password: str | None = None) -> httpx.Response:
        params = self.http.post("/api/v1/accounts/prelogin", json={"email": self.email}).json()
        keys = account.derive(password or self.password, account.KdfParams.from_json(params))
        r = self.http.post("/api/v1/session", json={"email": self.email, "auth": b64(keys.auth)})
        if r.status_code == 200:
            self.csrf = r.json()["csrf_token"]
        return r

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return None if r.status_code == 204 else r.json()

    def keyring_entries(self, family: str) -> list[Any]:
        from protocol.envelope import envelope_from_json

        return [
            envelope_from_json(e) for e in self.ok("GET", f"/api/v1/families/{family}/keyring")["entries"]
        ]

    def send(
        self,
        family: str,
        device: str,
        message_id: str,
        sealed: Any,
        type_: str,
        seq: int = 0,
        retention_days: int | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"id": message_id, "type": type_, "seq": seq, "sealed": sealed.to_json()}
        if retention_days is not None:
            body["retention_days"] = retention_days
        return self.call("POST", f"/api/v1/families/{family}/devices/{device}/messages", json=body)

    def close(self) -> None:
        self.http.close()


def policy(version: int, retention_days: int = 30) -> dict[str, Any]:
    return {
        "version": version,
        "age_band": "8-12",
        "timezone": "Asia/Shanghai",
        "retention_days": retention_days,
    }


@dataclass
class SimDevice:
    base_url: str
    directory: Path
    label: str = "ET-10"
    identity: Identity = field(default_factory=lambda: Identity.generate(is_device=True, label="ET-10"))
    token: str = ""
    family: str = ""
    keyring: Keyring | None = None
    server_key: str = ""
    epoch: str | None = None
    acked: int | None = None

    def __post_init__(self) -> None:
        from agent.store.journal import Journal

        self.http = httpx.Client(base_url=self.base_url, timeout=60)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(
            self.directory / "journal.sqlite", self.identity.sign_key, X25519PrivateKey.generate(),
            clock=lambda: datetime.now(UTC),
        )

    @property
    def id(self) -> str:
        return self.identity.id

    # -- pairing ------------------------------------------------------------------------

    def offer(self) -> tuple[DevicePairing, dict[str, Any]]:
        dp = DevicePairing(self.identity)
        r = self.http.post("/api/v1/device/pairing", json={"offer": dp.offer().to_json()})
        assert r.status_code == 201, r.text
        created = r.json()
        self.server_key = created["server_key"]
        return dp, created

    def pairing_headers(self, created: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {created['secret']}"}

    def answer_response(self, dp: DevicePairing, created: dict[str, Any], wait: float = 10) -> str:
        r = self.http.get(
            f"/api/v1/device/pairing/{created['session']}/response",
            params={"wait": wait},
            headers=self.pairing_headers(created),
        )
        assert r.status_code == 200, r.text
        reveal = dp.on_response(Response.from_json(r.json()))
        r = self.http.post(
            f"/api/v1/device/pairing/{created['session']}/reveal",
            json=reveal.to_json(),
            headers=self.pairing_headers(created),
        )
        assert r.status_code == 200, r.text
        assert dp.sas is not None
        return dp.sas

    def finish(
        self, dp: DevicePairing, created: dict[str, Any], *, sas_confirmed: bool = True, wait: float = 10
    ) -> PairingResult:
        r = self.http.get(
            f"/api/v1/device/pairing/{created['session']}/complete",
            params={"wait": wait},
            headers=self.pairing_headers(created),
        )
        assert r.status_code == 200, r.text
        result = dp.on_complete(Complete.from_json(r.json()), sas_confirmed=sas_confirmed)
        self.keyring = result.keyring
        self.family = result.keyring.family
        paired = compose(
            self.identity,
            self.family,
            self.id,
            Paired(entry_hash(result.keyring.entries[-1]), result.keyring.head_seq, created["session"]),
            int(time.time()),
        )
        r = self.http.post(
            f"/api/v1/device/pairing/{created['session']}/paired",
            json={"envelope": paired.to_json()},
            headers=self.pairing_headers(created),
        )
        assert r.status_code == 200, r.text
        self.journal.pair([g.seal_key for g in result.keyring.seal_keys])
        return result

    # -- log-in and sync -------------------------------------------------------------------

    def login(self) -> str:
        r = self.http.post("/api/v1/device/auth/challenge", json={"device_id": self.id})
        assert r.status_code == 200, r.text
        nonce = r.json()["nonce"]
        from protocol.encoding import unb64

        sig = self.identity.sign_key.sign(device_login_message(self.base_url, unb64(nonce, "n", 32), self.id))
        r = self.http.post(
            "/api/v1/device/auth/token", json={"device_id": self.id, "nonce": nonce, "signature": b64(sig)}
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        return self.token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def record(self, kind: str, data: dict[str, Any]) -> list[int]:
        from agent.store.events import Event, EventKind

        return self.journal.append([Event(EventKind(kind), datetime.now(UTC), data)])

    def upload_body(self, after: int, limit: int = 2000) -> dict[str, Any]:
        return journal_upload_body(self.journal.path, after, limit, epoch=self.epoch, acked=self.acked)

    def upload(self, after: int | None = None, limit: int = 2000) -> httpx.Response:
        start = self.acked if after is None and self.acked is not None else (after or 0)
        r = self.http.post("/api/v1/device/journal", json=self.upload_body(start, limit), headers=self.auth)
        if r.status_code == 200:
            self.epoch, self.acked = r.json()["epoch"], r.json()["cursor"]
        return r

    def queue(self, wait: float = 0) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/device/queue", params={"wait": wait}, headers=self.auth)
        assert r.status_code == 200, r.text
        messages: list[dict[str, Any]] = r.json()["messages"]
        return messages

    def ack(
        self,
        message_id: str,
        type_: str,
        result: AckResult = AckResult.APPLIED,
        version: int = 0,
        reason: str = "",
    ) -> httpx.Response:
        env = compose(
            self.identity,
            self.family,
            self.id,
            Ack(message_id, type_, result, reason, int(time.time()), version),
            int(time.time()),
        )
        return self.http.post("/api/v1/device/acks", json={"acks": [env.to_json()]}, headers=self.auth)

    def send_request(self, minutes: int, note: str) -> tuple[str, httpx.Response]:
        return self.request(ChildRequest(os.urandom(16).hex(), RequestKind.MORE_TIME, minutes=minutes, note=note))

    def request(self, value: ChildRequest) -> tuple[str, httpx.Response]:
        """A child's request, signed and sealed to the guardians: (message id, response)."""
        assert self.keyring is not None
        env = compose(self.identity, self.family, self.id, value, int(time.time()))
        msg_id = _body_id(env)
        sealed = seal_to_guardians(env, request_ctx(self.family, self.id, msg_id), self.keyring)
        body = {"id": msg_id, "kind": value.kind.value, "sealed": sealed.to_json()}
        return msg_id, self.http.post("/api/v1/device/requests", json=body, headers=self.auth)

    def close(self) -> None:
        self.journal.close()
        self.http.close()


def _body_id(env: Any) -> str:
    from protocol.envelope import parse_body

    return parse_body(env.body_bytes).id


def journal_upload_body(
    path: Path, after: int, limit: int, *, epoch: str | None = None, acked: int | None = None
) -> dict[str, Any]:
    """Records after `after` from an agent journal file, with their segments' guardian key
    wraps, the checkpoints in range and the purge anchor (what issue 14's outbox sends)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT r.seq, s.uid, r.nonce, r.ciphertext FROM records r JOIN segments s "
            "ON s.id = r.segment_id WHERE r.seq > ? ORDER BY r.seq LIMIT ?",
            (after, limit),
        ).fetchall()
        last = rows[-1][0] if rows else after
        uids = sorted({r[1] for r in rows})
        segments = []
        for uid in uids:
            keys = db.execute(
                "SELECT k.recipient, k.wrapped FROM segment_keys k JOIN segments s ON s.id = "
                "k.segment_id WHERE s.uid = ? AND k.role = 'guardian'",
                (uid,),
            ).fetchall()
            segments.append(
                {"uid": uid, "keys": [{"recipient": k[0], "wrapped": b64(bytes(k[1]))} for k in keys]}
            )
        cps = db.execute(
            "SELECT seq, head, at, signature FROM checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq",
            (after, last),
        ).fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        head = db.execute("SELECT max(seq) FROM records").fetchone()[0] or 0
    finally:
        db.close()
    body: dict[str, Any] = {
        "epoch": epoch,
        "acked": acked,
        "head": head,
        "segments": segments,
        "records": [
            {"seq": s, "segment": u, "nonce": b64(bytes(n)), "ciphertext": b64(bytes(c))}
            for s, u, n, c in rows
        ],
        "checkpoints": [
            {"seq": s, "head": b64(bytes(h)), "at": a, "signature": b64(bytes(g))} for s, h, a, g in cps
        ],
    }
    if "base_seq" in meta and int(meta["base_seq"]) > 0:
        body["anchor"] = {
            "seq": int(meta["base_seq"]),
            "head": b64(bytes(meta["base_hash"])),
            "signature": b64(bytes(meta["anchor_sig"])),
        }
    return body


def pair(
    guardian: GuardianClient,
    device: SimDevice,
    *,
    policy_version: int | None = 1,
    usage_reports: bool = True,
    accepted: bool = True,
) -> str:
    """A full pairing through the HTTP rendezvous; returns the family id."""
    dp, created = device.offer()
    claimed = guardian.ok("POST", "/api/v1/pairing/claim", json={"code": created["code"]})
    from protocol.pairing import Offer, Reveal

    gp = guardian.ref.start_pairing(Offer.from_json(claimed["offer"]))
    session = claimed["session"]
    guardian.ok("POST", f"/api/v1/pairing/{session}/response", json=gp.response().to_json())
    device_sas = device.answer_response(dp, created)
    r = guardian.call("GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 10})
    assert r.status_code == 200, r.text
    guardian_sas = gp.on_reveal(Reveal.from_json(r.json()))
    assert guardian_sas == device_sas
    notice = guardian.ok("GET", "/api/v1/consent/notice", params={"language": "en"})
    guardian.ok(
        "POST",
        f"/api/v1/pairing/{session}/consent",
        json={
            "version": notice["version"],
            "language": "en",
            "accepted": accepted,
            "usage_reports": usage_reports,
            "push_notifications": True,
        },
    )
    pol = None if policy_version is None else policy(policy_version)
    complete = guardian.ref.finish_pairing(gp, int(time.time()), policy=pol, usage_reports=usage_reports)
    ids = [i for i, _ in complete.messages]
    meta: list[dict[str, Any]] = [
        {"id": ids[0], "type": "consent", "seq": 0},
        {"id": ids[1], "type": "decision", "seq": 0},
    ]
    if pol is not None:
        meta.append({"id": ids[2], "type": "policy", "seq": policy_version, "retention_days": 30})
    guardian.ok(
        "POST", f"/api/v1/pairing/{session}/complete", json={"complete": complete.to_json(), "meta": meta}
    )
    device.finish(dp, created)
    device.login()
    return device.family


__all__ = ["AckResult", "GuardianClient", "SimDevice", "journal_upload_body", "pair", "policy"]
