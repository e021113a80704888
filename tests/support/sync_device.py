"""A device with its real sync client, in this process, against the real dashboard on
loopback: the trust-layer device of `support.trust_device` plus `agent.sync.SyncService`
(the daemon's wiring, minus D-Bus), and the guardian's side of pairing over the real
rendezvous (`support.dashboard_clients.GuardianClient`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.sync.service import SyncService
from agent.sync.sources import DaemonSource
from agent.sync.store import SYNC_DB, SyncStore
from protocol.envelope import FUTURE_TOLERANCE
from protocol.pairing import Offer, Reveal
from support.dashboard_clients import GuardianClient
from support.trust_device import Device


async def until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition",
                step: float = 0.02) -> float:
    """Wait (bounded) for a condition another task or thread makes true; seconds waited."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(step)
    return time.monotonic() - start


DAY_MARGIN = timedelta(minutes=5)  # how much of the child's day a test may spend (simulated)


def clear_of_midnight(now: datetime, zone: str = "Asia/Shanghai", margin: timedelta = DAY_MARGIN) -> datetime:
    """`now`, or the device's next local midnight if that is less than `margin` away: a test
    that spends a few simulated minutes of budget then never sees the day (and its budget)
    start again, whatever the hour CI runs at. The device's clock then runs at most `margin`
    ahead of the real one, well inside what signed messages tolerate."""
    assert margin.total_seconds() <= FUTURE_TOLERANCE / 2
    local = now.astimezone(ZoneInfo(zone))
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo)
    return now if midnight - local >= margin else (midnight + timedelta(seconds=1)).astimezone(UTC)


@dataclass
class SyncedDevice:
    device: Device
    sync: SyncService
    task: asyncio.Task[None]

    @classmethod
    async def start(cls, state: Path, url: str, policy_file: Path | None = None,
                    ca_file: Path | None = None) -> SyncedDevice:
        device = Device.make(state, policy_file, start=clear_of_midnight(datetime.now(UTC)))
        assert device.trusted is not None and device.counts is not None and device.collector is not None
        source = DaemonSource(lambda: device.agent.policy, device.store, device.ledger)
        sync = SyncService(url, device.trust, device.journal, SyncStore(state / SYNC_DB), device.counts, source,
                           device.trusted, ca_file=ca_file)
        device.collector.poke = sync.poke
        device.trust.inbox.on_answer = sync.poke
        return cls(device, sync, asyncio.ensure_future(sync.run()))

    async def stop(self) -> None:
        self.sync.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)
        self.sync.store.close()
        self.device.close()

    def kill(self) -> None:
        """As kill -9 would leave it: the task gone mid-work, nothing flushed or closed
        politely (the files are closed only so this process can open them again)."""
        self.task.cancel()
        self.sync.store.close()
        self.device.close()

    @property
    def id(self) -> str:
        return self.device.trust.device.id


async def pair(synced: SyncedDevice, guardian: GuardianClient, *, policy: dict[str, Any] | None = None,
               usage_reports: bool = True, confirm: bool = True) -> str:
    """Pair through the rendezvous as a person would: the tablet shows a code, the
    guardian types it, both compare the SAS, the guardian reads the notice and accepts."""
    sync = synced.sync
    sync.start_pairing()
    await until(lambda: sync.ticket is not None, what="the pairing code")
    assert sync.ticket is not None
    claimed = await asyncio.to_thread(guardian.ok, "POST", "/api/v1/pairing/claim", json={"code": sync.ticket.code})
    gp = guardian.ref.start_pairing(Offer.from_json(claimed["offer"]))
    session = claimed["session"]
    await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/pairing/{session}/response", json=gp.response().to_json())
    r = await asyncio.to_thread(guardian.call, "GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 10})
    assert r.status_code == 200, r.text
    guardian_sas = gp.on_reveal(Reveal.from_json(r.json()))
    await until(lambda: synced.device.trust.pairing.sas != "", what="the device's SAS")
    assert synced.device.trust.pairing.sas == guardian_sas
    sync.confirm_pairing(confirm and synced.device.trust.pairing.sas == guardian_sas)
    notice = await asyncio.to_thread(guardian.ok, "GET", "/api/v1/consent/notice", params={"language": "en"})
    await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/pairing/{session}/consent", json={
        "version": notice["version"], "language": "en", "accepted": True, "usage_reports": usage_reports,
        "push_notifications": False})
    complete = guardian.ref.finish_pairing(gp, int(time.time()), policy=policy, usage_reports=usage_reports)
    ids = [i for i, _ in complete.messages]
    meta: list[dict[str, Any]] = [{"id": ids[0], "type": "consent", "seq": 0},
                                  {"id": ids[1], "type": "decision", "seq": 0}]
    if policy is not None:
        meta.append({"id": ids[2], "type": "policy", "seq": policy["version"], "retention_days": 30})
    await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/pairing/{session}/complete",
                            json={"complete": complete.to_json(), "meta": meta})
    r = await asyncio.to_thread(guardian.call, "GET", f"/api/v1/pairing/{session}/paired", params={"wait": 20})
    assert r.status_code == 200 and r.json()["state"] == "paired", r.text  # the app waits for this too
    assert synced.device.trust.store.paired and guardian.ref.keyring is not None
    return guardian.ref.keyring.family
