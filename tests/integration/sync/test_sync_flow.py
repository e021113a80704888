"""The loop closed, device side: pairing through the rendezvous, a signed policy enforced,
a request that reaches the guardian sealed, a grant that unlocks, ask-to-buy answered,
logs that arrive exactly once, summaries the guardian can open, and unpairing that leaves
nothing behind — the device's real sync client against the real dashboard."""

from __future__ import annotations

import asyncio
import errno
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from support.dashboard_clients import GuardianClient
from support.dashboard_server import ThreadServer
from support.sync_device import SyncedDevice, pair, until
from support.trust_device import policy_json

from agent.core.decision import LockReason
from agent.store.events import Event, EventKind
from protocol.journal import (
    MAX_UPLOAD_SEGMENTS,
    WireRecord,  # noqa: F401  (the wire types the server checks)
)
from protocol.messages import ChildRequest, DecisionKind, DeleteData, GrantTime, Summary
from protocol.sealing import request_ctx, summary_ctx

NOTE = "homework needs twenty more minutes, zebra-quartz"  # a string to look for later
OPEN = ["windows", "curfew", "school", "rest", "games"]


def tight(version: int, minutes: int, **extra: Any) -> dict[str, Any]:
    return policy_json(version, waive=OPEN, budget={"daily_minutes": minutes}, **extra)


@pytest.fixture
async def synced(tmp_path: Path, server: ThreadServer) -> AsyncIterator[SyncedDevice]:
    d = await SyncedDevice.start(tmp_path / "device", server.url)
    yield d
    if not d.task.done():
        await d.stop()


async def _requests(guardian: GuardianClient, family: str, device: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(guardian.ok, "GET", f"/api/v1/families/{family}/devices/{device}/requests",
                                   params={"status": "open"})


async def test_pair_enforce_request_grant_and_report(synced: SyncedDevice,
                                                    make_guardian: Callable[..., GuardianClient]) -> None:
    guardian = make_guardian()
    family = await pair(synced, guardian, policy=tight(1, 2))
    device = synced.device
    assert device.agent.policy.version == 1 and device.agent.tick().budget_seconds == 2 * 60
    # The child uses the whole budget (in less of the day than the device keeps clear of midnight): locked.
    device.agent.set_counting(True)
    device.clock.advance(3 * 60)
    d = device.agent.tick()
    assert d.locked and d.reason is LockReason.BUDGET_SPENT
    # The child asks for more time: it reaches the guardian, sealed, at once.
    rid = device.controller.request_more_time(20, NOTE)
    deadline = time.monotonic() + 10
    while not (items := await _requests(guardian, family, synced.id)):
        assert time.monotonic() < deadline, "the request never reached the guardian"
        await asyncio.sleep(0.05)
    [item] = items
    assert item["kind"] == "more_time"
    _body, request = guardian.ref.open_from_device(item["sealed"], request_ctx(family, synced.id, item["id"]),
                                                  synced.id)
    assert isinstance(request, ChildRequest) and request.request_id == rid and request.note == NOTE
    # The guardian answers from the phone: the device unlocks within the push latency.
    mid, sealed = guardian.ref.decide(synced.id, GrantTime(20, rid), int(time.time()))
    sent = time.monotonic()
    r = await asyncio.to_thread(guardian.send, family, synced.id, mid, sealed, "decision")
    assert r.status_code == 201, r.text
    waited = await until(lambda: not device.agent.tick().locked, what="unlocked by the grant")
    print(f"guardian send -> unlocked: {waited * 1000:.0f} ms")
    assert time.monotonic() - sent < 10
    assert device.answered and device.answered[-1][:3] == (rid, True, 20)
    # The guardian sees "applied", from the device's own signature.
    deadline = time.monotonic() + 10
    while (delivery := await asyncio.to_thread(
            guardian.ok, "GET", f"/api/v1/families/{family}/devices/{synced.id}/messages/{mid}"))["status"] != "applied":
        assert time.monotonic() < deadline, delivery
        await asyncio.sleep(0.05)
    assert guardian.ref.verify_ack(json.dumps(delivery["ack"]).encode(), synced.id).result.value == "applied"
    # The day's summary arrives sealed; the guardian reads the minutes used.
    synced.sync._next_summary = synced.sync._next_summary.min.replace(tzinfo=synced.sync._next_summary.tzinfo)
    synced.sync.poke()
    deadline = time.monotonic() + 10
    while not (days := await asyncio.to_thread(guardian.ok, "GET",
                                                f"/api/v1/families/{family}/devices/{synced.id}/summaries")):
        assert time.monotonic() < deadline, "no summary"
        await asyncio.sleep(0.05)
    opened = [guardian.ref.open_from_device(day["sealed"], summary_ctx(family, synced.id, day["day"]), synced.id)[1]
              for day in days]
    assert any(isinstance(s, Summary) and s.used_seconds >= 2 * 60 and s.requests >= 1 for s in opened)


def _damage(synced: SyncedDevice, *, rehash: bool) -> tuple[int, int]:
    """A sound segment, then a record in the next one with a bit flipped on the card
    (`rehash`: and its stored hash made to match, which only a writer does); (the last
    sound seq, the damaged seq)."""
    import sqlite3

    from protocol.journal import chain_hash
    device = synced.device
    device.agent.events.record(Event(EventKind.REPORT, device.agent.now(), {"note": "sound"}))
    device.journal.close_segment()  # a closed segment: one checkpoint vouches for all of it
    sound = device.journal.head_seq
    device.agent.events.record(Event(EventKind.REPORT, device.agent.now(), {"note": "to be damaged"}))
    damaged = device.journal.head_seq
    with sqlite3.connect(device.journal.path) as db:
        ct, nonce, prev, uid = db.execute(
            "SELECT ciphertext, nonce, prev_hash, uid FROM records JOIN segments ON segments.id = segment_id "
            "WHERE seq = ?", (damaged,)).fetchone()
        flipped = bytes([ct[0] ^ 1]) + ct[1:]
        db.execute("UPDATE records SET ciphertext = ? WHERE seq = ?", (flipped, damaged))
        if rehash:
            db.execute("UPDATE records SET hash = ? WHERE seq = ?",
                       (chain_hash(prev, damaged, uid, nonce, flipped), damaged))
    return sound, damaged


class _FullOnce:
    """The sync's event sink, with a full disk for the first journal_damaged event."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.refused = inner, False

    def record(self, event: Event) -> None:
        if event.kind is EventKind.JOURNAL_DAMAGED and not self.refused:
            self.refused = True
            raise OSError(errno.ENOSPC, "No space left on device")
        self.inner.record(event)


async def test_a_record_damaged_on_the_tablet_is_left_out_said_and_the_journal_goes_on(
        synced: SyncedDevice, make_guardian: Callable[..., GuardianClient]) -> None:
    """A bit flipped on the SD card in a sealed record: the server's chain check refuses it
    on every try. The sound segment before it goes alone; the device finds the damage in
    its own journal (contents no longer matching the stored hash) and goes on from the
    signed checkpoint after it, and the guardians are told which records they will never
    see, once, even when the disk is full at that moment. Before, the whole batch and
    everything after it stayed on the tablet for ever."""
    sound, damaged = _damage(synced, rehash=False)
    full = _FullOnce(synced.sync.events)  # the disk is full just when the event is written
    synced.sync.events = full
    guardian = make_guardian()
    family = await pair(synced, guardian, policy=tight(1, 600))
    await until(lambda: full.refused, timeout=20, what="the upload past the damage")
    # the stretch stays in the sync store until a later exchange says it (the disk has room
    # again); whether one already ran by now is the sync's timing, so only the end is checked
    synced.sync.poke()
    # past the damage, and everything since (the journal_damaged event too) acknowledged
    await until(lambda: synced.sync.store.left_out() is None
                and damaged < synced.sync.store.cursor().acked >= synced.device.journal.head_seq,
                timeout=20, what="the journal past the damage")
    seqs = await _server_seqs(guardian, family, synced.id)
    assert seqs[:sound] == list(range(1, sound + 1)) and damaged not in seqs, (seqs, sound, damaged)
    resumed = seqs[sound]  # the record after the resume checkpoint: the damaged segment is left out
    assert resumed > damaged and seqs[sound:] == list(range(resumed, seqs[-1] + 1)), seqs
    events = await _open_journal(guardian, family, synced.id, None)  # (more may have come since)
    [said] = [e for e in events if e["kind"] == "journal_damaged"]
    assert said["data"] == {"first_damaged": damaged, "left_out_from": sound + 1, "left_out_to": resumed - 1,
                            "records": resumed - 1 - sound}, said
    assert "journal" not in synced.sync.refused and synced.sync.connected
    assert synced.device.journal.head_seq >= damaged  # the device keeps what it holds (retention decides)


async def test_a_refusal_the_device_cannot_explain_holds_back_the_journal_alone(
        synced: SyncedDevice, make_guardian: Callable[..., GuardianClient]) -> None:
    """A record whose contents and stored hash were both rewritten: the device finds no
    damage of its own to go past, so the server's 422 holds back the journal alone (named
    in the status) while the rest goes on. Before, that 422 ended the session each time:
    the summaries, the catalogue and the server's time never went, and the device logged
    in again every few seconds. Nothing is left out: the records stay on the device."""
    sound, damaged = _damage(synced, rehash=True)
    guardian = make_guardian()
    family = await pair(synced, guardian, policy=tight(1, 600))
    await until(lambda: "journal" in synced.sync.refused, timeout=20, what="the journal refused")
    assert "the dashboard refuses the journal: 422" in synced.sync.last_error
    deadline = time.monotonic() + 20
    while not await asyncio.to_thread(guardian.ok, "GET", f"/api/v1/families/{family}/devices/{synced.id}/summaries"):
        assert time.monotonic() < deadline, "the refused journal held back the summaries too"
        await asyncio.sleep(0.05)
    # the exchange that carried the summary ends well, and the session holds
    await until(lambda: synced.sync.connected, timeout=20, what="the session going on past the refusal")
    assert "the dashboard refuses the journal: 422" in synced.sync.status().last_error
    # the sound segment before the damaged one's went alone (it waited with its batch
    # before); nothing of the damaged segment did, and the device still holds it
    seqs = await _server_seqs(guardian, family, synced.id)
    assert seqs == list(range(1, sound + 1)), (seqs, sound, damaged)
    assert synced.device.journal.head_seq >= damaged and synced.sync.status().pending_uploads > 0
    assert synced.sync.store.cursor().acked == sound


# A tablet offline for weeks and restarted often opens a segment at every start: more
# segments than one upload may carry. The upload splits there (it went 422 forever before).
@pytest.mark.parametrize("segments", [1, MAX_UPLOAD_SEGMENTS + 36], ids=["one-segment", "more-than-an-upload-holds"])
async def test_logs_arrive_exactly_once_in_order_across_an_outage(
        tmp_path: Path, make_guardian: Callable[..., GuardianClient], db_url: str, segments: int) -> None:
    from support.dashboard_server import ThreadServer, server_settings
    first = ThreadServer(server_settings(db_url)).start()
    synced = await SyncedDevice.start(tmp_path / "device", first.url)
    guardian = make_guardian(base_url=first.url)
    family = await pair(synced, guardian, policy=tight(1, 600))
    await _drained(synced)
    # The server goes away; the child keeps using the device and events pile up.
    first.stop()
    closed_before = _closed_segments(synced)  # pairing closed one only if something was logged before it
    for i in range(300):
        synced.device.agent.events.record(Event(EventKind.DNS_BLOCKED, synced.device.agent.now(),
                                                {"domain": f"site{i}.example", "i": i}))
        if (i + 1) % (300 // segments) == 0:
            synced.device.journal.close_segment()
    synced.device.journal.close_segment()
    assert _closed_segments(synced) - closed_before == segments  # whatever the hour (what came before pairing varies)
    head = synced.device.journal.head_seq
    await until(lambda: not synced.sync.connected, what="the outage noticed")
    # It comes back on the same port and the same database: everything arrives once.
    back = _restart(first, db_url)
    try:
        await until(lambda: synced.sync.store.cursor().acked >= head, timeout=30, what="caught up")
        seqs = await _server_seqs(guardian, family, synced.id)
        assert seqs == list(range(seqs[0], head + 1)) and seqs[0] == 1  # every record, once, in order
        events = await _open_journal(guardian, family, synced.id, seqs_wanted=len(seqs))
        assert [e["data"]["i"] for e in events if e["kind"] == "dns_blocked"] == list(range(300))
    finally:
        await synced.stop()
        back.stop()


def _closed_segments(synced: SyncedDevice) -> int:
    return sum(s.closed_at is not None for s in synced.device.journal.segments())


def _restart(old: ThreadServer, db_url: str) -> ThreadServer:
    from support.dashboard_server import server_settings
    again = ThreadServer.__new__(ThreadServer)
    ThreadServer.__init__(again, server_settings(db_url))
    again.port = old.port
    again.server.config.port = old.port
    return again.start()


async def _drained(synced: SyncedDevice) -> None:
    await until(lambda: synced.sync.connected and synced.sync.store.cursor().acked >= synced.device.journal.head_seq
                - 2 and not synced.device.trust.store.outgoing(), timeout=20, what="everything sent")


async def _server_seqs(guardian: GuardianClient, family: str, device: str) -> list[int]:
    seqs: list[int] = []
    after = 0
    while True:
        page = await asyncio.to_thread(guardian.ok, "GET", f"/api/v1/families/{family}/devices/{device}/journal",
                                       params={"after": after, "limit": 1000})
        seqs += [r["seq"] for r in page["records"]]
        if page["next_after"] is None:
            return seqs
        after = page["next_after"]


async def _open_journal(guardian: GuardianClient, family: str, device: str,
                        seqs_wanted: int | None) -> list[dict[str, Any]]:
    """Open the journal as the guardian's app does: check the chain, unwrap, decrypt."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from agent.store import seal
    out: list[dict[str, Any]] = []
    after = 0
    keys: dict[str, AESGCM] = {}
    me = guardian.ref.identity.public.seal.hex()
    while True:
        page = await asyncio.to_thread(guardian.ok, "GET", f"/api/v1/families/{family}/devices/{device}/journal",
                                       params={"after": after, "limit": 1000})
        for s in page["segments"]:
            wrapped = next(k["wrapped"] for k in s["keys"] if k["recipient"] == me)
            from protocol.encoding import unb64
            keys[s["uid"]] = AESGCM(seal.unwrap_key(unb64(wrapped, "w"), guardian.ref.identity.seal_key, s["uid"]))
        for r in page["records"]:
            from protocol.encoding import unb64
            raw = seal.open_record(keys[r["segment"]], r["segment"], r["seq"], unb64(r["nonce"], "n"),
                                   unb64(r["ciphertext"], "c"))
            out.append(json.loads(raw))
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seqs_wanted is None or len(out) == seqs_wanted
    return out


async def test_unpairing_deletes_on_both_sides_and_returns_to_the_factory_default(
        tmp_path: Path, server: ThreadServer, make_guardian: Callable[..., GuardianClient]) -> None:
    factory = tmp_path / "policy.toml"
    factory.write_text('version = 3\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n')
    synced = await SyncedDevice.start(tmp_path / "device", server.url, factory)
    guardian = make_guardian()
    try:
        family = await pair(synced, guardian, policy=tight(4, 300))
        synced.device.controller.request_more_time(5, NOTE)
        await _drained(synced)
        mid, sealed = guardian.ref.decide(synced.id, DeleteData(DecisionKind.UNPAIR, "moving on"), int(time.time()))
        assert (await asyncio.to_thread(guardian.send, family, synced.id, mid, sealed, "decision")).status_code == 201
        await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/families/{family}/devices/{synced.id}/unpair",
                                json={"decision": mid})
        await until(lambda: not synced.device.trust.store.paired, what="unpaired on the device")
        assert synced.device.agent.policy.version == 3  # the factory default, not "unlimited"
        assert synced.device.store.interval_count() == 0
        await until(lambda: not synced.device.trust.store.outgoing(), what="the receipt and ack sent")
    finally:
        await synced.stop()
    # Nothing of the child's is left on the device: the known note is in no file.
    for path in (tmp_path / "device").rglob("*"):
        if path.is_file():
            assert NOTE.encode() not in path.read_bytes(), path
    # Nor on the server (SQLite or PostgreSQL): no journal record, summary or request of it.
    from sqlalchemy import func, select

    from dashboard.db import schema
    with server.state.db.read() as conn:
        for table in (schema.records, schema.summaries, schema.child_requests):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name


async def test_the_servers_signed_time_moves_the_trusted_clock_forward_only(
        tmp_path: Path, db_url: str, make_guardian: Callable[..., GuardianClient]) -> None:
    """A device whose clock runs behind (no NTP) gets days right from the dashboard's
    signed time; a server whose clock is behind cannot move the device's back."""
    from support.dashboard_fixtures import ManualClock as ServerClock
    from support.dashboard_server import server_settings

    server_clock = ServerClock(int(time.time()))
    srv = ThreadServer(server_settings(db_url), clock=server_clock).start()
    synced = await SyncedDevice.start(tmp_path / "device", srv.url)
    try:
        guardian = make_guardian(base_url=srv.url)
        await pair(synced, guardian, policy=tight(1, 60))
        clock = synced.device.agent.clock
        before = clock.latest()
        server_clock.advance(6 * 3600)  # the dashboard is six hours ahead of this device
        synced.sync._next_time = before.min.replace(tzinfo=before.tzinfo)
        synced.sync.poke()
        await until(lambda: (clock.latest() - before).total_seconds() > 6 * 3600 - 60, what="the clock moved forward")
        moved = [e for e in synced.device.events(guardian.ref, EventKind.CLOCK_JUMP) if e.data.get("source")]
        assert moved and moved[-1].data["delta_seconds"] > 6 * 3600 - 60
        server_clock.advance(-12 * 3600)  # now six hours behind the device: nothing moves back
        ahead = clock.latest()
        synced.sync._next_time = ahead.min.replace(tzinfo=ahead.tzinfo)
        synced.sync.poke()
        await until(lambda: synced.sync._next_time > ahead, what="another exchange")
        assert clock.latest() >= ahead
    finally:
        await synced.stop()
        srv.stop()


async def test_without_a_push_socket_the_queue_long_poll_still_brings_answers_at_once(
        tmp_path: Path, db_url: str, make_guardian: Callable[..., GuardianClient]) -> None:
    """Behind a proxy that refuses WebSockets the device long-polls its queue: a grant still
    arrives within a second, not at the next minute's exchange. (The server is told its
    public origin is the proxy's, as a deployment behind a proxy is: device log-ins are
    bound to the origin the device was configured with.)"""
    from support.dashboard_server import server_settings
    from support.relays import HttpOnlyRelay

    relay = HttpOnlyRelay("")
    server = ThreadServer(server_settings(db_url, public_origin=relay.url)).start()
    relay.upstream = server.url
    relay.start()
    synced = await SyncedDevice.start(tmp_path / "device", relay.url)
    try:
        guardian = make_guardian(base_url=relay.url)
        family = await pair(synced, guardian, policy=tight(1, 30))
        await until(lambda: synced.sync.connected and relay.refused_sockets > 0, what="connected without push")
        device = synced.device
        budget = device.agent.tick().budget_seconds
        await asyncio.sleep(0.5)  # the device is now inside a long-poll of its queue
        mid, sealed = guardian.ref.decide(synced.id, GrantTime(10, None), int(time.time()))
        assert (await asyncio.to_thread(guardian.send, family, synced.id, mid, sealed, "decision")).status_code == 201
        waited = await until(lambda: device.agent.tick().budget_seconds == (budget or 0) + 600, timeout=5,
                             what="the grant through the long-poll")
        assert waited < 5
    finally:
        await synced.stop()
        relay.stop()
        server.stop()


def test_a_device_started_just_before_midnight_starts_on_the_next_day() -> None:
    """The tests above spend minutes of the child's day; CI runs at any hour in Shanghai."""
    from datetime import UTC, datetime

    from support.sync_device import clear_of_midnight
    evening = datetime(2026, 12, 1, 15, 56, tzinfo=UTC)  # 23:56 in Shanghai
    assert clear_of_midnight(evening) == datetime(2026, 12, 1, 16, 0, 1, tzinfo=UTC)
    noon = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert clear_of_midnight(noon) == noon
