"""The device's sync with the guardian's dashboard, on the daemon's asyncio loop.

Offline-first: enforcement never waits for it (the trust layer applies what arrives; the
Agent decides alone), and everything it sends is durable before it is sent (the journal,
the trust store's outbox), so a kill -9 or a lost connection only delays. One session at a
time, while paired:

    log in (challenge signed with the device key, bound to the configured origin)
    push socket (a wake-up hint only) ──┐
    every wake-up, poke or minute:      ├─ the queue: open, verify, apply, ack (signed)
                                        ├─ the outbox: acks, requests, receipts
                                        ├─ the journal: records after the server's cursor
                                        ├─ the day's summary, the app catalogue (on change)
                                        └─ the server's signed time (hourly)

A failure ends the session; the next starts after a back-off with jitter (at most 8 s, so
a device is caught up within seconds of the network returning, longer when the server asks
with Retry-After). A permanent refusal of one upload (a 4xx: a journal record damaged on
the SD card that the server's chain check refuses, a summary it finds invalid) does not:
that upload alone is held back and retried after a back-off of a minute to an hour, named
in the status, while the queue, the outbox and the other uploads go on - nothing is
dropped, and one bad record no longer stops the summaries or tears the session down every
few seconds. Pairing through the
dashboard's rendezvous (`start_pairing`) runs beside it while unpaired.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.core.calendar import day_span, local_day, zone
from agent.core.policy import Policy
from agent.core.usage import Usage
from agent.store.chain import Anchor
from agent.store.events import Event, EventKind, EventSink
from agent.store.journal import Journal
from agent.store.journaldb import WireRange
from agent.sync.backoff import Backoff
from agent.sync.daily import DailyCounts
from agent.sync.http import DashboardClient, ProblemError, SyncError, UnreachableError
from agent.sync.store import Cursor, SyncStore
from agent.sync.summary import build as build_summary
from agent.trust.layer import TrustLayer
from agent.trust.store import Outgoing
from protocol.encoding import b64, unb64
from protocol.errors import ProtocolError
from protocol.messages import Ack, AckResult, Catalogue, CatalogueApp
from protocol.pairing import Complete, QrPayload, Response
from protocol.sealing import catalogue_ctx, summary_ctx
from protocol.server import device_login_message, verify_receipt, verify_server_time

log = logging.getLogger("minormode.sync")
RECONNECT = Backoff(first=0.5, longest=8.0)
REFUSED_RETRY = Backoff(first=60.0, longest=3600.0)  # an upload the server refused for good
LONGEST_RETRY_AFTER = 3600.0  # a server's Retry-After is heeded up to an hour
EXCHANGE_EVERY = 60.0  # seconds between exchanges without a wake-up
SUMMARY_EVERY = timedelta(minutes=5)
TIME_EVERY = timedelta(hours=1)
PAIRING_POLL = 25  # seconds per long-poll of the rendezvous
UPLOAD_BATCH = 1000
LONG_POLL = 25  # seconds a queue long-poll waits when there is no push socket
OUTBOX_LANES = 8  # requests and receipts sent at the same time


class UsageSource(Protocol):
    """What a day's summary is built from (the daemon's state store, ledger and Agent)."""

    def policy(self) -> Policy: ...

    def usage_since(self, start: datetime) -> Usage: ...

    def purchases_between(self, start: datetime, end: datetime) -> list[dict[str, object]]: ...

    def apps(self) -> list[CatalogueApp]: ...


class SignedTimeClock(Protocol):
    def latest(self) -> datetime: ...

    def adopt_signed_time(self, verified: datetime, source: str) -> float: ...


@dataclass
class PairingTicket:
    code: str
    qr_url: str
    expires_at: int
    session: str
    secret: str = field(repr=False)


def _sound_prefix(exc: ProblemError, records: Sequence[tuple[int, str, bytes, bytes]]) -> int:
    """How many records at the start of a refused upload the server would take alone: those
    before the first it names (`first_bad_seq`: its check failed from there on, and the
    checkpoint before it vouches for the rest), when it names one inside the upload."""
    bad = exc.extra.get("first_bad_seq")
    if not (exc.permanent and isinstance(bad, int) and records):
        return 0
    if not records[0][0] < bad <= records[-1][0]:
        return 0
    return bad - records[0][0]


def _refused_from_the_first(exc: ProblemError, records: Sequence[tuple[int, str, bytes, bytes]]) -> bool:
    """The server's check failed at the upload's first record (nothing before it to send)."""
    return bool(exc.permanent and records and exc.extra.get("first_bad_seq") == records[0][0])


def _journal_body(cursor: Cursor, wire: WireRange, anchor: Anchor | None) -> dict[str, Any]:
    """One journal upload (dashboard/API.md): the records still sealed, their segments'
    wrapped keys, the signed checkpoints, and the anchor the range starts from, if any."""
    return {
        "epoch": cursor.epoch, "acked": cursor.acked, "head": wire.head,
        "anchor": None if anchor is None else {
            "seq": anchor.seq, "head": b64(anchor.hash), "signature": b64(anchor.signature)},
        "segments": [{"uid": uid, "keys": [{"recipient": r, "wrapped": b64(w)} for r, w in keys]}
                     for uid, keys in wire.segments.items()],
        "records": [{"seq": s, "segment": u, "nonce": b64(n), "ciphertext": b64(c)}
                    for s, u, n, c in wire.records],
        "checkpoints": [{"seq": c.seq, "head": b64(c.head), "at": c.at, "signature": b64(c.signature)}
                        for c in wire.checkpoints],
    }


def _asked_wait(exc: SyncError) -> float:
    """The server's Retry-After, if it gave one, up to an hour (a server cannot silence
    the device for longer)."""
    asked = exc.retry_after if isinstance(exc, ProblemError) else None
    return min(asked or 0.0, LONGEST_RETRY_AFTER)


@dataclass(frozen=True)
class Refusal:
    """An upload the dashboard refused for good, held back until `retry_at` (monotonic)."""

    failures: int
    retry_at: float
    why: str


@dataclass
class SyncStatus:
    origin: str
    configured: bool
    connected: bool
    last_contact: int | None
    last_error: str
    pending_uploads: int  # journal records the server has not acknowledged
    outbox: int
    ticket: PairingTicket | None


class SyncService:
    def __init__(self, url: str, trust: TrustLayer, journal: Journal, store: SyncStore, counts: DailyCounts,
                 source: UsageSource, clock: SignedTimeClock, *, ca_file: Any = None,
                 on_change: Callable[[], None] = lambda: None, events: EventSink | None = None) -> None:
        self.client = DashboardClient(url, ca_file=ca_file)
        self.trust, self.journal, self.store, self.counts = trust, journal, store, counts
        self.source, self.clock, self.on_change = source, clock, on_change
        self.events: EventSink = events or journal  # the daemon's sink: counted for the day's summary too
        self.connected = False
        self.last_error = ""
        self.ticket: PairingTicket | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._confirmation: asyncio.Future[bool] | None = None
        self._pairing_task: asyncio.Task[None] | None = None
        self._next_summary = datetime.min.replace(tzinfo=UTC)
        self._next_time = datetime.min.replace(tzinfo=UTC)
        self._token: tuple[str, int] | None = None
        self._pushed = False  # the push socket said hello in this session
        self.refused: dict[str, Refusal] = {}  # upload -> the server's standing refusal

    # -- what the rest of the agent calls -------------------------------------------------

    def poke(self) -> None:
        """Something is waiting to be sent (a request, an ack): exchange now."""
        self._wake.set()

    def status(self) -> SyncStatus:
        cursor = self.store.cursor()
        pending = max(0, self.journal.head_seq - cursor.acked) if self.trust.store.paired else 0
        outbox = len(self.trust.store.outgoing(1000))
        return SyncStatus(self.client.origin, True, self.connected, self.store.last_contact(),
                          self.last_error, pending, outbox, self.ticket)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._pairing_task is not None:
            self._pairing_task.cancel()

    async def run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                if not self.trust.store.paired:
                    self.connected = False
                    await self._sleep(EXCHANGE_EVERY)
                    continue
                try:
                    await self._session()
                    failures = 0
                except SyncError as exc:
                    failures += 1
                    self.connected, self.last_error = False, str(exc)
                    log.warning("sync: %s (retrying)", exc)
                    self.on_change()
                    await self._sleep(max(RECONNECT.delay(failures, random.random()), _asked_wait(exc)))
        finally:
            if self._pairing_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pairing_task
            await self.client.close()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # -- a session ---------------------------------------------------------------------------

    async def _session(self) -> None:
        """Exchanges until something fails. The push socket is only a wake-up hint: when it
        cannot be held (a proxy without WebSockets) the session goes on with the queue's
        long-poll as its wake-up, and tries the socket again at the next session."""
        token = await self._login()
        listener: asyncio.Future[None] | None = asyncio.ensure_future(self._listen(token))
        try:
            while not self._stopping.is_set() and self.trust.store.paired:
                self._wake.clear()
                await self._exchange()
                if not self.connected:
                    self.connected, self.last_error = True, self._refusals()
                    self.on_change()
                if listener is None:
                    await self._long_poll()
                    continue
                waker: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait({listener, waker}, timeout=EXCHANGE_EVERY,
                                             return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if listener in done:
                    if not self._pushed:
                        log.warning("sync: no push socket (%s); long-polling the queue instead",
                                    listener.exception())
                        listener = None
                        continue
                    listener.result()  # raises why the push socket ended
                    raise UnreachableError("push socket ended")
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, SyncError):
                    await listener

    async def _listen(self, token: str) -> None:
        self._pushed = False
        async for message in self.client.push(token):
            if message.get("type") == "hello":
                self._pushed = True
            if message.get("type") in ("wake", "hello"):
                self._wake.set()

    async def _long_poll(self) -> None:
        """Wait for the queue (at most LONG_POLL s) unless something local needs sending."""
        waker: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
        poll: asyncio.Future[Any] = asyncio.ensure_future(
            self._authed("GET", "/device/queue", params={"wait": str(LONG_POLL)}, timeout=LONG_POLL + 15))
        try:
            await asyncio.wait({waker, poll}, return_when=asyncio.FIRST_COMPLETED)
            if poll.done():
                poll.result()  # a failure ends the session like any other
        finally:
            waker.cancel()
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll

    async def _login(self) -> str:
        now = self._unix()
        if self._token is not None and self._token[1] > now + 60:
            return self._token[0]
        device = self.trust.device
        answer = await self.client.call("POST", "/device/auth/challenge", body={"device_id": device.id})
        nonce = unb64(str(answer["nonce"]), "challenge.nonce")
        signature = device.sign_key.sign(device_login_message(self.client.origin, nonce, device.id))
        got = await self.client.call("POST", "/device/auth/token", body={
            "device_id": device.id, "nonce": answer["nonce"], "signature": b64(signature)})
        self._token = (str(got["token"]), int(got["expires_at"]))
        return self._token[0]

    async def _authed(self, method: str, path: str, **kw: Any) -> Any:
        token = await self._login()
        try:
            return await self.client.call(method, path, bearer=token, **kw)
        except ProblemError as exc:
            if exc.status != 401:
                raise
            self._token = None  # expired early (a server restart): log in again once
            return await self.client.call(method, path, bearer=await self._login(), **kw)

    async def _exchange(self) -> None:
        await self._fetch_queue()
        await self._send_outbox()
        if not self.trust.store.paired:
            self.store.forget()
            self.refused.clear()
            return
        consent = self.trust.store.consent()
        if consent is None or consent.usage_reports:
            await self._unless_refused("journal", self._upload_journal)
            await self._unless_refused("summary", self._upload_summaries)
        await self._unless_refused("catalogue", self._upload_catalogue)
        await self._unless_refused("time", self._resync_time)
        self.store.contact(self._unix())

    async def _unless_refused(self, upload: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run one upload unless the server's refusal of it stands; a new permanent refusal
        holds it back (REFUSED_RETRY, or the server's Retry-After if longer) instead of
        ending the session. Other failures end the session as before."""
        held = self.refused.get(upload)
        if held is not None and time.monotonic() < held.retry_at:
            return
        try:
            await step()
        except ProblemError as exc:
            if not exc.permanent:
                raise
            failures = 1 if held is None else held.failures + 1
            wait = max(REFUSED_RETRY.delay(failures, random.random()), _asked_wait(exc))
            self.refused[upload] = Refusal(failures, time.monotonic() + wait,
                                           f"the dashboard refuses the {upload}: {exc}")
            log.error("sync: the dashboard refuses the %s (%s); holding it back %.0f s, the rest goes on",
                      upload, exc, wait)
        else:
            if held is None:
                return
            del self.refused[upload]
            log.warning("sync: the dashboard took the %s again", upload)
        self.last_error = self._refusals()
        self.on_change()

    def _refusals(self) -> str:
        return "; ".join(r.why for _, r in sorted(self.refused.items()))

    def _unix(self) -> int:
        return int(self.clock.latest().timestamp())

    # -- the queue ----------------------------------------------------------------------------

    async def _fetch_queue(self) -> None:
        answer = await self._authed("GET", "/device/queue")
        for item in answer.get("messages", []):
            self._apply(item)

    def _apply(self, item: dict[str, Any]) -> None:
        kind, message_id = str(item.get("type")), str(item.get("id"))
        if kind in ("policy", "decision", "consent") and isinstance(item.get("sealed"), dict):
            got = self.trust.deliver(message_id, json.dumps(item["sealed"]).encode())
            if got.result is AckResult.DUPLICATE and got.ack:
                self.trust.store.enqueue(f"re-{message_id}-{self._unix()}", "ack", got.ack, self._unix())
            return
        if kind == "keyring" and isinstance(item.get("entry"), dict):
            try:
                ring = self.trust.deliver_keyring([item["entry"]])
                self._ack(message_id, "keyring", AckResult.APPLIED, f"keyring at entry {ring.head_seq}")
            except ProtocolError as exc:
                self._ack(message_id, "keyring", AckResult.REFUSED, str(exc))
            return
        if kind == "server_receipt" and isinstance(item.get("receipt"), dict):
            self._server_receipt(message_id, item["receipt"])
            return
        self._ack(message_id, "unknown", AckResult.REFUSED, f"unknown queue item type {kind!r}")

    def _ack(self, message_id: str, type_: str, result: AckResult, reason: str) -> None:
        applied_at = self._unix() if result is AckResult.APPLIED else None
        ack = Ack(message_id, type_, result, reason[:500], applied_at, self.trust.store.policy_version)
        self.trust.signer.enqueue("ack", ack)

    def _server_receipt(self, message_id: str, receipt: dict[str, Any]) -> None:
        key = self.store.server_key
        try:
            if key is None:
                raise ProtocolError("receipt", "no server key is pinned")
            body = verify_receipt(receipt, Ed25519PublicKey.from_public_bytes(key))
        except (ProtocolError, ValueError) as exc:
            self.trust.agent.events.record(Event(EventKind.BAD_SIGNATURE, self.clock.latest(), {
                "what": "server receipt refused", "why": str(exc)[:300]}))
            self._ack(message_id, "receipt", AckResult.REFUSED, str(exc))
            return
        self.trust.agent.events.record(Event(EventKind.RETENTION_PURGE, self.clock.latest(), {
            "what": "the dashboard deleted the child's data", "scope": body.scope,
            "deleted": sum(body.deleted.values())}))
        self._ack(message_id, "receipt", AckResult.APPLIED, f"server deletion {body.scope} noted")

    # -- the outbox ---------------------------------------------------------------------------

    async def _send_outbox(self) -> None:
        """Acks in batches, then requests and receipts a few at a time in parallel (each is
        its own call; over a slow link one after the other they would queue for seconds)."""
        lanes = asyncio.Semaphore(OUTBOX_LANES)

        async def send(o: Outgoing) -> None:
            async with lanes:
                if o.kind == "request":
                    await self._authed("POST", "/device/requests", body=json.loads(o.body))
                elif o.kind == "receipt":
                    await self._authed("POST", "/device/receipts", body={"envelope": json.loads(o.body)})

        for _ in range(50):  # bounded: at most 5,000 messages an exchange
            waiting = [o for o in self.trust.store.outgoing(100) if o.kind != "paired"]
            if not waiting:
                return
            acks = [o for o in waiting if o.kind == "ack"]
            if acks:
                await self._authed("POST", "/device/acks", body={"acks": [json.loads(o.body) for o in acks]})
            await asyncio.gather(*(send(o) for o in waiting if o.kind != "ack"))
            self.trust.store.mark_sent([o.id for o in waiting], self._unix())

    # -- the journal --------------------------------------------------------------------------

    async def _upload_journal(self) -> None:
        cursor = self.store.cursor()
        if cursor.epoch is None:
            server = await self._authed("GET", "/device/journal")
            cursor = Cursor(str(server["epoch"]), int(server["cursor"]), int(server["next_seq"]))
        self._say_left_out()  # one a kill -9 or a full disk kept from the journal before
        limit, prefix_sent, skip = UPLOAD_BATCH, False, None
        for _ in range(100):  # bounded: at most 100,000 records an exchange
            after = cursor.next_seq - 1 if skip is None else skip[1].seq
            wire = self.journal.wire_range(after, limit)
            if not wire.records and not wire.checkpoints and skip is None:
                break
            body = _journal_body(cursor, wire, skip[1] if skip is not None else wire.anchor)
            try:
                answer = await self._authed("POST", "/device/journal", body=body)
            except ProblemError as exc:
                if exc.slug == "gap" and isinstance(exc.extra.get("next_seq"), int):
                    cursor = Cursor(cursor.epoch, cursor.acked, int(exc.extra["next_seq"]))
                    continue
                if exc.slug == "no-consent":
                    return
                sound = _sound_prefix(exc, wire.records)
                if not prefix_sent and skip is None and sound > 0:
                    # the records before the refused one are sound: they go alone first (a
                    # damaged record kept its whole batch, up to UPLOAD_BATCH records of
                    # several segments, from the guardian before)
                    limit, prefix_sent = sound, True
                    continue
                if skip is None and _refused_from_the_first(exc, wire.records):
                    skip = self.journal.damage_after(after)
                    if skip is not None:  # damaged on this device: go on past it, and say so
                        log.error("sync: journal records %d..%d are damaged on this device (%s); sending "
                                  "the journal on from %d", skip[0], skip[1].seq, exc, skip[1].seq + 1)
                        continue
                raise
            new = Cursor(str(answer["epoch"]), int(answer["cursor"]), int(answer["next_seq"]))
            if cursor.epoch is not None and new.epoch != cursor.epoch:
                log.warning("sync: the dashboard's store changed (epoch %s): resending the journal",
                            new.epoch)
                new = Cursor(new.epoch, int(answer["cursor"]), max(1, int(answer["base_seq"]) + 1))
            if skip is None:
                self.store.save_cursor(new)
            else:
                self.store.save_cursor(new, left_out=(cursor.next_seq, skip[0], skip[1].seq))
                self._say_left_out()
                skip = None
            progressed = new.next_seq > cursor.next_seq
            cursor, limit = new, UPLOAD_BATCH
            if not progressed or new.next_seq > wire.head:
                break

    def _say_left_out(self) -> None:
        """The journal event that tells the guardians which records they will never see (in
        the journal itself: it goes with the next upload), for the stretch the sync store
        holds until the event is recorded: at least once, whatever stops the agent."""
        pending = self.store.left_out()
        if pending is None:
            return
        from_seq, damaged, to_seq = pending
        event = Event(EventKind.JOURNAL_DAMAGED, self.clock.latest(),
                      {"first_damaged": damaged, "left_out_from": from_seq, "left_out_to": to_seq,
                       "records": to_seq - from_seq + 1})
        try:
            self.events.record(event)
        except (sqlite3.Error, OSError) as exc:  # a full disk: said at the next exchange
            log.error("sync: could not journal the damaged records %d..%d yet: %s", from_seq, to_seq, exc)
            return
        self.store.left_out_said()

    # -- summaries and the catalogue --------------------------------------------------------------

    async def _upload_summaries(self) -> None:
        now = self.clock.latest()
        if now < self._next_summary:
            return
        self._next_summary = now + SUMMARY_EVERY
        policy = self.source.policy()
        tz = zone(policy.timezone)
        today = local_day(now, tz)
        for day in (today - timedelta(days=1), today):
            await self._upload_summary(day, policy)

    async def _upload_summary(self, day: date, policy: Policy) -> None:
        start, end = day_span(day, zone(policy.timezone))
        summary = build_summary(day, policy, self.source.usage_since(start), self.counts.of_day(day),
                                self.source.purchases_between(start, end))
        digest = hashlib.sha256(repr(summary).encode()).hexdigest()
        if self.store.uploaded(f"summary:{day.isoformat()}") == digest:
            return
        made = self.trust.sealed_for_guardians(summary, lambda f, d, _id: summary_ctx(f, d, day.isoformat()))
        if made is None:
            return
        sealed = made[1]
        try:
            await self._authed("PUT", "/device/summaries",
                               body={"day": day.isoformat(), "sealed": sealed.to_json()})
        except ProblemError as exc:
            if exc.slug == "no-consent":
                return
            raise
        self.store.mark_uploaded(f"summary:{day.isoformat()}", digest)

    async def _upload_catalogue(self) -> None:
        apps = sorted(self.source.apps(), key=lambda a: a.id)[:2000]
        if not apps:
            return
        value = Catalogue(tuple(apps))
        digest = hashlib.sha256(repr(value).encode()).hexdigest()
        if self.store.uploaded("catalogue") == digest:
            return
        made = self.trust.sealed_for_guardians(value, lambda f, d, _id: catalogue_ctx(f, d))
        if made is None:
            return
        await self._authed("PUT", "/device/catalogue", body={"sealed": made[1].to_json()})
        self.store.mark_uploaded("catalogue", digest)

    # -- the server's time ----------------------------------------------------------------------

    async def _resync_time(self) -> None:
        now = self.clock.latest()
        key = self.store.server_key
        if now < self._next_time or key is None:
            return
        self._next_time = now + TIME_EVERY
        nonce = os.urandom(16)
        answer = await self.client.call("GET", "/device/time", params={"nonce": b64(nonce)})
        try:
            if answer.get("server_key") != key.hex():
                raise ProtocolError("server_key", "the dashboard's key is not the one pinned at pairing")
            verify_server_time(Ed25519PublicKey.from_public_bytes(key), int(answer["time"]), nonce,
                               unb64(str(answer["signature"]), "signature", 64))
        except (ProtocolError, KeyError, ValueError) as exc:
            log.error("sync: the dashboard's time is refused: %s", exc)
            self.trust.agent.events.record(Event(EventKind.BAD_SIGNATURE, now, {
                "what": "server time refused", "why": str(exc)[:300]}))
            return
        server_time = datetime.fromtimestamp(int(answer["time"]), UTC)
        self.clock.adopt_signed_time(server_time, "the dashboard's signed time")

    # -- pairing through the rendezvous ----------------------------------------------------------

    def start_pairing(self, *, again_when_expired: bool = False) -> None:
        """Begin pairing in the background (the code and QR appear in `status().ticket`);
        `again_when_expired`: offer a new code whenever one expires, while unpaired (the
        factory state's first-boot screen)."""
        if self.trust.store.paired:
            raise ProtocolError("pairing", "this device is paired already; its guardians add others")
        if self._pairing_task is not None and not self._pairing_task.done():
            self._pairing_task.cancel()
        self._pairing_task = asyncio.ensure_future(self._pair_until_paired(again_when_expired))

    async def _pair_until_paired(self, again: bool) -> None:
        failures = 0
        while not self._stopping.is_set() and not self.trust.store.paired:
            self._confirmation = asyncio.get_running_loop().create_future()
            ok = await self._pair()
            if ok or not again:
                return
            failures = 0 if self.last_error.startswith("pairing: no ") else failures + 1
            await self._sleep(RECONNECT.delay(max(1, failures), random.random()))

    def confirm_pairing(self, same: bool) -> None:
        """The person at the tablet compared the SAS with the guardian's screen."""
        if self._confirmation is None or self._confirmation.done():
            raise ProtocolError("pairing", "no pairing is waiting for a confirmation")
        self._confirmation.set_result(same)

    async def _pair(self) -> bool:
        """One pairing attempt through the rendezvous; whether it paired."""
        ticket = None
        try:
            offer = self.trust.pairing.begin()
            created = await self.client.call("POST", "/device/pairing", body={"offer": offer.to_json()})
            attempt = self.trust.pairing.attempt
            assert attempt is not None
            session, secret = str(created["session"]), str(created["secret"])
            self.trust.pairing.session = session
            qr = QrPayload(str(created["code"]), self.trust.device.id, attempt.qr_secret)
            ticket = self.ticket = PairingTicket(qr.code, qr.url(self.client.origin),
                                                 int(created["expires_at"]), session, secret)
            server_key = bytes.fromhex(str(created["server_key"]))
            self.on_change()
            response = await self._rendezvous(ticket, "response")
            reveal, _sas = self.trust.pairing.respond(Response.from_json(response))
            await self.client.call("POST", f"/device/pairing/{session}/reveal", bearer=secret,
                                   body=reveal.to_json())
            self.on_change()
            complete = await self._rendezvous(ticket, "complete")
            confirmed = attempt.by_qr
            if not confirmed:
                assert self._confirmation is not None
                confirmed = await asyncio.wait_for(asyncio.shield(self._confirmation),
                                                   max(1, ticket.expires_at - self._unix()))
            self.trust.pairing.complete(Complete.from_json(complete), sas_confirmed=confirmed)
            paired = [o for o in self.trust.store.outgoing(1000) if o.kind == "paired"]
            for o in paired:
                await self.client.call("POST", f"/device/pairing/{session}/paired", bearer=secret,
                                       body={"envelope": json.loads(o.body)})
            self.trust.store.mark_sent([o.id for o in paired], self._unix())
            self.store.forget()
            self.store.pin(server_key, self.client.origin)
            log.info("sync: paired through %s", self.client.origin)
            self.poke()
            return True
        except (SyncError, ProtocolError, TimeoutError, KeyError, ValueError) as exc:
            log.warning("sync: pairing did not finish: %s", exc)
            self.last_error = f"pairing: {exc}"
            self.trust.pairing.abort()
            if ticket is not None:
                with contextlib.suppress(SyncError):
                    await self.client.call("POST", f"/device/pairing/{ticket.session}/abort",
                                           bearer=ticket.secret,
                                           body={"reason": str(exc)[:200] or "aborted on the device"})
            return False
        finally:
            self.ticket = None
            self.on_change()

    async def _rendezvous(self, ticket: PairingTicket, step: str) -> Any:
        while self._unix() < ticket.expires_at:
            got = await self.client.call("GET", f"/device/pairing/{ticket.session}/{step}",
                                         bearer=ticket.secret, params={"wait": str(PAIRING_POLL)},
                                         timeout=PAIRING_POLL + 15)
            if got is not None:
                return got
        raise TimeoutError(f"no {step} from a guardian before the code expired")
