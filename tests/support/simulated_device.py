"""A simulated tablet for the web app's end-to-end tests, built on the `protocol` package and
the server's real device routes (issue 14's agent/sync replaces it; see tests/web/README.md).

It does what the device side of PROTOCOL.md asks: pairs through the rendezvous (offer,
reveal, SAS, complete, paired), logs in with its key, keeps its keyring and replay state,
long-polls its queue, opens and accepts each guardian message with `protocol.accept`,
validates policies with the agent's own parser (`agent.core.parse`), applies them to a small
model of enforcement (today's budget, bonus minutes, pending purchases, the guardian-code
secret) and acknowledges each with a signed ack; it uploads sealed summaries, the app
catalogue and child requests. The tests talk to it through `Device`, the interface the real
agent in development mode will also offer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.core.parse import PolicyError, policy_from_mapping
from agent.core.policy import Policy
from protocol.accept import ReplayState, open_guardian_message
from protocol.compose import compose, seal_to_guardians
from protocol.envelope import envelope_from_json
from protocol.errors import ProtocolError
from protocol.messages import (
    Ack,
    AckResult,
    Catalogue,
    CatalogueApp,
    ChildRequest,
    Consent,
    DecisionKind,
    DeleteData,
    DenyRequest,
    GrantTime,
    PolicyMessage,
    PurchaseDecision,
    RequestKind,
    SetGuardianCode,
    Summary,
)
from protocol.pairing import DevicePairing, format_code
from protocol.sealing import catalogue_ctx, summary_ctx
from protocol.server import verify_receipt
from support.dashboard_clients import SimDevice


class Device(Protocol):
    """What the end-to-end tests need from a tablet (simulated now, the agent later)."""

    @property
    def id(self) -> str: ...
    def pairing_code(self) -> str: ...
    def reveal(self, wait: float = 20) -> str: ...
    def confirm_pairing(self, wait: float = 20) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def wait_until(self, what: Callable[[], bool], timeout: float = 20) -> float: ...


@dataclass
class Applied:
    """One guardian message as this device applied (or refused) it."""

    id: str
    type: str
    result: str
    reason: str
    at: float  # time.monotonic() when acknowledged
    payload: Any = None


@dataclass
class SimulatedDevice:
    base_url: str
    directory: Path
    label: str = "ET-10"
    sim: SimDevice = field(init=False)
    replay: ReplayState = field(default_factory=ReplayState)
    policy: Policy | None = None
    policy_mapping: dict[str, Any] | None = None
    used_seconds: int = 0
    bonus_minutes: int = 0
    denied: set[str] = field(default_factory=set)
    purchases: dict[str, str] = field(default_factory=dict)  # request id -> pending/approved/denied
    code_secret: bytes | None = None
    consent: Consent | None = None
    deleted: list[str] = field(default_factory=list)  # delete_data / unpair reasons
    unpaired: bool = False
    applied: list[Applied] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    paired_by_qr: bool = False
    refuse_next: str | None = None  # a test makes the next guardian message refused with this reason

    def __post_init__(self) -> None:
        self.sim = SimDevice(self.base_url, self.directory, self.label)
        self._pairing: tuple[DevicePairing, dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    @property
    def id(self) -> str:
        return self.sim.id

    @property
    def family(self) -> str:
        return self.sim.family

    # -- pairing (PROTOCOL.md §7, the device's side) ---------------------------------------

    def pairing_code(self) -> str:
        """Offer, as the tablet's pairing screen does: the code it shows (`1234 5678`)."""
        self._pairing = self.sim.offer()
        return format_code(self._pairing[1]["code"])

    def qr_url(self, dashboard: str) -> str:
        assert self._pairing is not None
        dp, created = self._pairing
        return dp.qr(created["code"]).url(dashboard)

    def reveal(self, wait: float = 20) -> str:
        """Answer the guardian's response with the reveal; the SAS the tablet shows."""
        assert self._pairing is not None
        dp, created = self._pairing
        return self.sim.answer_response(dp, created, wait=wait)

    def confirm_pairing(self, wait: float = 20) -> None:
        """The person at the tablet confirmed the SAS: accept the complete, say paired,
        apply the first messages (consent, guardian-code secret, policy)."""
        assert self._pairing is not None
        dp, created = self._pairing
        result = self.sim.finish(dp, created, sas_confirmed=True, wait=wait)
        self.paired_by_qr = result.by_qr
        self.sim.login()
        self._pairing = None
        acks = [self._apply_sealed(mid, json.dumps(sealed.to_json()).encode()) for mid, sealed in result.messages]
        self._post_acks(acks)

    # -- the queue ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"device-{self.id[:6]}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync(wait=2)
            except (httpx.HTTPError, AssertionError) as exc:
                self.errors.append(repr(exc))
                self._stop.wait(0.5)
                self._relogin()

    def _relogin(self) -> None:
        try:
            self.sim.login()
        except (httpx.HTTPError, AssertionError) as exc:
            self.errors.append(f"login: {exc!r}")

    def sync(self, wait: float = 0) -> int:
        """Fetch the queue (long-poll), apply and acknowledge each item; how many."""
        r = self.sim.http.get("/api/v1/device/queue", params={"wait": wait}, headers=self.sim.auth)
        if r.status_code == 401:
            self._relogin()
            return 0
        if r.status_code == 404 and self.unpaired:
            self._stop.set()  # forgotten by the server after the receipt's ack
            return 0
        assert r.status_code == 200, r.text
        items = r.json()["messages"]
        acks = []
        for item in items:
            if item["type"] == "keyring":
                acks.append(self._apply_keyring(item))
            elif item["type"] == "server_receipt":
                acks.append(self._apply_receipt(item))
            else:
                acks.append(self._apply_sealed(item["id"], json.dumps(item["sealed"]).encode()))
        if acks:
            self._post_acks(acks)
        return len(items)

    def _post_acks(self, acks: list[tuple[Ack, Applied]]) -> None:
        now = int(time.time())
        envs = [compose(self.sim.identity, self.family, self.id, ack, now).to_json() for ack, _ in acks]
        r = self.sim.http.post("/api/v1/device/acks", json={"acks": envs}, headers=self.sim.auth)
        assert r.status_code == 200, r.text
        with self._changed:
            for _, applied in acks:
                applied.at = time.monotonic()
                self.applied.append(applied)
            self._changed.notify_all()

    def _ack(self, message: str, type_: str, result: AckResult, reason: str = "", payload: Any = None
             ) -> tuple[Ack, Applied]:
        now = int(time.time())
        version = self.replay.policy_version
        ack = Ack(message, type_, result, reason[:500], now if result is AckResult.APPLIED else None, version)
        return ack, Applied(message, type_, result.value, reason, 0.0, payload)

    def _apply_keyring(self, item: dict[str, Any]) -> tuple[Ack, Applied]:
        assert self.sim.keyring is not None
        try:
            self.sim.keyring = self.sim.keyring.extend_all([envelope_from_json(item["entry"])])
        except ProtocolError as exc:
            return self._ack(item["id"], "keyring", AckResult.REFUSED, str(exc))
        return self._ack(item["id"], "keyring", AckResult.APPLIED)

    def _apply_receipt(self, item: dict[str, Any]) -> tuple[Ack, Applied]:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.sim.server_key))
        try:
            receipt = verify_receipt(item["receipt"], key)
        except ProtocolError as exc:
            return self._ack(item["id"], "receipt", AckResult.REFUSED, str(exc))
        return self._ack(item["id"], "receipt", AckResult.APPLIED, payload=receipt)

    def _apply_sealed(self, message_id: str, sealed: bytes) -> tuple[Ack, Applied]:
        assert self.sim.keyring is not None
        now = int(time.time())
        try:
            accepted = open_guardian_message(sealed, message_id, self.sim.identity, self.sim.keyring,
                                             self.replay, now)
        except ProtocolError as exc:
            return self._ack(message_id, "decision", AckResult.REFUSED, str(exc))
        body, payload = accepted.body, accepted.payload
        if self.refuse_next is not None:
            reason, self.refuse_next = self.refuse_next, None
            return self._ack(message_id, body.type.value, AckResult.REFUSED, reason)
        if isinstance(payload, PolicyMessage):
            try:
                policy = policy_from_mapping(payload.policy, f"policy v{body.seq}")
            except PolicyError as exc:  # the agent's parser is the judge (§5.1)
                return self._ack(message_id, "policy", AckResult.REFUSED, str(exc))
            self.policy, self.policy_mapping = policy, payload.policy
        else:
            self._decide(payload)
        self.replay = self.replay.after(body, now)
        return self._ack(message_id, body.type.value, AckResult.APPLIED, payload=payload)

    def _decide(self, payload: Any) -> None:
        if isinstance(payload, GrantTime):
            self.bonus_minutes += payload.minutes
        elif isinstance(payload, DenyRequest):
            self.denied.add(payload.request_id)
        elif isinstance(payload, PurchaseDecision):
            self.purchases[payload.request_id] = "approved" if payload.approve else "denied"
        elif isinstance(payload, SetGuardianCode):
            self.code_secret = payload.secret
        elif isinstance(payload, Consent):
            self.consent = payload
        elif isinstance(payload, DeleteData):
            self.deleted.append(payload.reason)
            self.used_seconds = 0
            if payload.kind is DecisionKind.UNPAIR:
                self.unpaired = True
                self.policy = self.policy_mapping = None
                self.code_secret = None

    # -- what the tests look at -------------------------------------------------------------

    def budget_minutes(self, at: datetime | None = None) -> int | None:
        if self.policy is None:
            return None
        now = (at or datetime.now(UTC)).astimezone(ZoneInfo(self.policy.timezone))
        return self.policy.budget.minutes_on(now.weekday())

    @property
    def locked(self) -> bool:
        """Today's time is spent (the enforcement the real agent does at its next tick)."""
        budget = self.budget_minutes()
        return budget is not None and self.used_seconds >= (budget + self.bonus_minutes) * 60

    def use(self, seconds: int) -> None:
        self.used_seconds += seconds

    def wait_until(self, what: Callable[[], bool], timeout: float = 20) -> float:
        """Block until `what()` holds (re-checked on every applied message); when it did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not what():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the device did not get there in {timeout} s; applied: "
                                       f"{[(a.type, a.result, a.reason) for a in self.applied]}; "
                                       f"errors: {self.errors[-3:]}")
                self._changed.wait(min(left, 0.25))
        return time.monotonic()

    def applied_message(self, message_id: str) -> Applied | None:
        with self._lock:
            return next((a for a in self.applied if a.id == message_id), None)

    # -- what the device uploads ------------------------------------------------------------

    def ask_more_time(self, minutes: int, note: str = "") -> str:
        return self._request(ChildRequest(_rid(), RequestKind.MORE_TIME, minutes=minutes, note=note))

    def ask_to_buy(self, app_id: str, item: str, amount: int, currency: str = "CNY") -> tuple[str, str]:
        """A purchase over the ask-to-buy threshold waits: (message id, request id)."""
        rid = _rid()
        self.purchases[rid] = "pending"
        return self._request(ChildRequest(rid, RequestKind.PURCHASE, app_id=app_id, item=item, amount=amount,
                                          currency=currency)), rid

    def report(self, kind: str, note: str) -> str:
        return self._request(ChildRequest(_rid(), RequestKind.REPORT, report_kind=kind, note=note))

    def _request(self, value: ChildRequest) -> str:
        msg_id, r = self.sim.request(value)
        assert r.status_code == 200, r.text
        return msg_id

    def upload_summary(self, summary: Summary) -> None:
        keyring = self.sim.keyring
        assert keyring is not None
        env = compose(self.sim.identity, self.family, self.id, summary, int(time.time()))
        sealed = seal_to_guardians(env, summary_ctx(self.family, self.id, summary.day), keyring)
        r = self.sim.http.put("/api/v1/device/summaries", json={"day": summary.day, "sealed": sealed.to_json()},
                              headers=self.sim.auth)
        assert r.status_code == 200, r.text

    def upload_catalogue(self, apps: list[tuple[str, str, list[str]]]) -> None:
        keyring = self.sim.keyring
        assert keyring is not None
        value = Catalogue(tuple(CatalogueApp(i, n, tuple(c)) for i, n, c in apps))
        env = compose(self.sim.identity, self.family, self.id, value, int(time.time()))
        sealed = seal_to_guardians(env, catalogue_ctx(self.family, self.id), keyring)
        r = self.sim.http.put("/api/v1/device/catalogue", json={"sealed": sealed.to_json()}, headers=self.sim.auth)
        assert r.status_code == 200, r.text

    def close(self) -> None:
        self.stop()
        self.sim.close()


def _rid() -> str:
    import os

    return os.urandom(16).hex()


def busy_day(day: str, *, seed: int, timezone: str = "Asia/Shanghai", budget_minutes: int = 120,
             apps: int = 40, domains: int = 300) -> Summary:
    """A busy child's day: use most hours, dozens of apps, hundreds of blocked lookups,
    purchases and a tamper sign now and then (for the report's rendering benchmark)."""
    import random

    rnd = random.Random(seed)
    hourly = [0] * 7 + [rnd.randint(600, 3600) for _ in range(15)] + [rnd.randint(0, 600), 0]
    used = sum(hourly)
    names = [f"org.example.App{n:02d}" for n in range(apps)]
    weights = [rnd.random() ** 3 for _ in names]
    total_w = sum(weights)
    per_app = {n: int(used * w / total_w) for n, w in zip(names, weights, strict=True)}
    return Summary(
        day=day, timezone=timezone, used_seconds=min(used, 86_400), budget_seconds=budget_minutes * 60,
        per_app={k: v for k, v in per_app.items() if v}, hourly=tuple(hourly),
        blocked_apps={f"org.example.Blocked{n}": rnd.randint(1, 20) for n in range(8)},
        blocked_domains={f"site{n}.example-{rnd.randint(0, 9)}.com": rnd.randint(1, 40) for n in range(domains)},
        purchases=tuple({"item": f"Gems x{n}", "amount": rnd.randint(100, 5000), "currency": "CNY",
                         "status": rnd.choice(["approved", "denied", "pending"])} for n in range(3)),
        requests=rnd.randint(0, 6),
        tamper={"clock_jump": 1} if seed % 3 == 0 else ({"agent_start": 2} if seed % 5 == 0 else {}),
        policy_version=1,
    )
