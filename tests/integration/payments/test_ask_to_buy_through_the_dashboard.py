"""Ask to buy, end to end: a real app's purchase over the threshold waits; the request
reaches the guardian through the dashboard, sealed; the guardian's signed approval comes
back through the dashboard and the app hears `approved`; a denial, `denied`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from support.dashboard_clients import GuardianClient
from support.dashboard_server import ThreadServer
from support.sync_device import SyncedDevice, pair
from support.trust_device import policy_json

from protocol.messages import ChildRequest, PurchaseDecision, RequestKind
from protocol.sealing import request_ctx

from .test_payments_bus import _listen
from .test_signed_approval import _authorize, start_broker


async def test_a_purchase_waits_for_the_guardian_and_the_answer_comes_through_the_dashboard(
        tmp_path: Path, server: ThreadServer, make_guardian: Callable[..., GuardianClient], bus_address: str,
        callers: dict[str, Path]) -> None:
    synced = await SyncedDevice.start(tmp_path / "device", server.url)
    guardian = make_guardian()
    device = synced.device
    service = await start_broker(device, bus_address, callers["shop"])
    bus, decided = await _listen(bus_address)
    try:
        family = await pair(synced, guardian, policy=policy_json(1, age_band="12-16", spending={"ask_above": 1000},
                                                                  apps={"payers": ["org.example.Shop"]}))
        for amount, approve, answer in ((3000, True, "approved"), (2500, False, "denied")):
            decision, request_id, reason = await _authorize(bus_address, callers["shop"], amount, f"k{amount}")
            assert (decision, reason) == ("pending", "ask_guardian")
            found = None
            deadline = time.monotonic() + 10
            while found is None:
                assert time.monotonic() < deadline, "the purchase never reached the guardian"
                items = await asyncio.to_thread(guardian.ok, "GET",
                                                f"/api/v1/families/{family}/devices/{synced.id}/requests",
                                                params={"status": "open"})
                for item in items:
                    if item["kind"] != "purchase":
                        continue
                    _, req = guardian.ref.open_from_device(item["sealed"], request_ctx(family, synced.id, item["id"]),
                                                           synced.id)
                    if isinstance(req, ChildRequest) and req.request_id == request_id:
                        found = req
                await asyncio.sleep(0.05)
            assert found.kind is RequestKind.PURCHASE and found.amount == amount and found.item == "gems"
            mid, sealed = guardian.ref.decide(synced.id, PurchaseDecision(request_id, approve), int(time.time()))
            r = await asyncio.to_thread(guardian.send, family, synced.id, mid, sealed, "decision")
            assert r.status_code == 201, r.text
            assert await asyncio.wait_for(decided.get(), 15) == [request_id, answer]
    finally:
        bus.disconnect()
        await service.stop()
        await synced.stop()
