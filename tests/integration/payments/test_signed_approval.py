"""Ask to buy, answered from the guardian's phone: a real app's purchase over the threshold
waits; the guardian's signed approval (through the trust layer, as sync delivers it)
settles it and the broker tells the app at once; a signed denial denies the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.trust_device import Device, policy_json

from agent.api.callers import ExeMapIdentifier
from agent.api.payments import BUS_NAME, INTERFACE, OBJECT_PATH, PaymentsService
from agent.store.ledger import PurchaseStatus
from protocol.guardian import ReferenceGuardian
from protocol.messages import AckResult, PurchaseDecision

from .test_payments_bus import _listen, _strings


@pytest.fixture
def paired(tmp_path: Path) -> Iterator[tuple[Device, ReferenceGuardian]]:
    device = Device.make(tmp_path / "state")
    guardian = ReferenceGuardian()
    device.pair(guardian, policy=policy_json(1, age_band="12-16", spending={"ask_above": 1000},
                                             apps={"payers": ["org.example.Shop"]}))
    yield device, guardian
    device.close()


async def start_broker(device: Device, bus_address: str, shop: Path) -> PaymentsService:
    """The payments broker for the shop app, on the device's ledger and policy, told at once
    when the trust layer settles a purchase (as the daemon's services wire it); its
    announce interval is an hour, so only that poke can make a decision arrive in a test."""
    service = PaymentsService(
        ledger=device.ledger, policy=lambda: device.agent.policy,
        identifier=ExeMapIdentifier({str(shop): "org.example.Shop"}),
        events=device.agent.events, clock=device.agent.now, bus_address=bus_address, announce_interval=3600)
    await service.start()
    pokes: set[asyncio.Future[object]] = set()
    device.trust.effects.on_purchase_decided = lambda: pokes.add(asyncio.ensure_future(service.announce_decisions()))
    return service


async def _authorize(address: str, caller: Path, amount: int, key: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        str(caller), f"--bus={address}", "--print-reply", f"--dest={BUS_NAME}", OBJECT_PATH,
        f"{INTERFACE}.Authorize", f"int64:{amount}", "string:CNY", "string:gems", f"string:{key}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return _strings(out.decode())


async def test_a_signed_approval_settles_the_pending_purchase_and_the_app_hears_it(
        paired: tuple[Device, ReferenceGuardian], bus_address: str, callers: dict[str, Path]) -> None:
    device, guardian = paired
    service = await start_broker(device, bus_address, callers["shop"])
    bus, decided = await _listen(bus_address)
    try:
        decision, request_id, reason = await _authorize(bus_address, callers["shop"], 3000, "k1")
        assert (decision, reason) == ("pending", "ask_guardian")
        mid, sealed = guardian.decide(device.trust.device.id, PurchaseDecision(request_id, True), device.now)
        assert device.trust.deliver(mid, sealed.encode()).result is AckResult.APPLIED
        # The announce interval is an hour: only the trust layer's poke can make this arrive.
        assert await asyncio.wait_for(decided.get(), 10) == [request_id, "approved"]
        assert device.ledger.get(request_id).status is PurchaseStatus.APPROVED  # type: ignore[union-attr]
        decision, second, _ = await _authorize(bus_address, callers["shop"], 2000, "k2")
        assert decision == "pending"
        mid, sealed = guardian.decide(device.trust.device.id, PurchaseDecision(second, False), device.now)
        assert device.trust.deliver(mid, sealed.encode()).result is AckResult.APPLIED
        assert await asyncio.wait_for(decided.get(), 10) == [second, "denied"]
    finally:
        bus.disconnect()
        await service.stop()
