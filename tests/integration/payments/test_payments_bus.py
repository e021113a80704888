"""The spending broker on a private bus, called by real processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from agent.api.callers import ExeMapIdentifier
from agent.api.payments import BUS_NAME, INTERFACE, OBJECT_PATH, PaymentsService
from agent.core.parse import default_policy
from agent.core.policy import AgeBand, Policy, SpendingCaps
from agent.store.events import EventKind, MemoryEventSink
from agent.store.ledger import Ledger, PurchaseStatus

T0 = datetime(2026, 4, 10, 3, 0, tzinfo=UTC)


@dataclasses.dataclass
class Harness:
    service: PaymentsService
    ledger: Ledger
    events: MemoryEventSink
    address: str
    callers: dict[str, Path]
    now: list[datetime]

    async def call(self, app: str, member: str, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(self.callers[app]), f"--bus={self.address}", "--print-reply",
            f"--dest={BUS_NAME}", OBJECT_PATH, f"{INTERFACE}.{member}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def authorize(self, app: str, amount: int, key: str, currency: str = "CNY",
                        ) -> list[str]:
        rc, out, err = await self.call(
            app, "Authorize", f"int64:{amount}", f"string:{currency}", "string:gems",
            f"string:{key}")
        assert rc == 0, err
        return _strings(out)


def _strings(out: str) -> list[str]:
    return [line.strip()[len('string "'):-1] for line in out.splitlines()
            if line.strip().startswith('string "')]


def _policy() -> Policy:
    base = default_policy(AgeBand.AGE_16_18, timezone="Asia/Shanghai")
    return dataclasses.replace(
        base,
        apps=dataclasses.replace(base.apps, payers=frozenset({"org.example.Shop"})),
        spending=SpendingCaps("CNY", per_transaction=5000, per_day=8000, per_month=20000,
                              ask_above=3000),
    )


@pytest.fixture
async def harness(
    tmp_path: Path, bus_address: str, callers: dict[str, Path]
) -> AsyncIterator[Harness]:
    ledger = Ledger(tmp_path / "ledger.db", pending_ttl=timedelta(minutes=30))
    events = MemoryEventSink()
    now = [T0]
    identifier = ExeMapIdentifier({
        str(callers["shop"]): "org.example.Shop",
        str(callers["notes"]): "org.example.Notes",  # a known app, but not a payer
    })
    service = PaymentsService(
        ledger=ledger, policy=_policy, identifier=identifier, events=events,
        clock=lambda: now[0], bus_address=bus_address, announce_interval=3600,
    )
    await service.start()
    yield Harness(service, ledger, events, bus_address, callers, now)
    await service.stop()
    ledger.close()


async def test_allowed_app_is_approved_within_caps(harness: Harness) -> None:
    decision, request_id, reason = await harness.authorize("shop", 2500, "k1")
    assert (decision, reason) == ("approved", "within_caps")
    stored = harness.ledger.get(request_id)
    assert stored is not None and stored.app_id == "org.example.Shop" and stored.amount == 2500
    assert [e.data["decision"] for e in harness.events.events
            if e.kind is EventKind.PURCHASE] == ["approved"]


async def test_day_cap_over_the_bus(harness: Harness) -> None:
    assert (await harness.authorize("shop", 3000, "a"))[0] == "approved"
    assert (await harness.authorize("shop", 3000, "b"))[0] == "approved"
    assert (await harness.authorize("shop", 2000, "c"))[0] == "approved"  # exactly 8000
    assert (await harness.authorize("shop", 1, "d"))[::2] == ["denied", "over_daily_cap"]


@pytest.mark.parametrize("app", ["intruder", "notes"])
async def test_caller_that_is_not_an_allowed_app_is_refused(harness: Harness, app: str) -> None:
    rc, _out, err = await harness.call(app, "Authorize", "int64:100", "string:CNY",
                                       "string:gems", "string:k")
    assert rc != 0
    assert "org.freedesktop.DBus.Error.AccessDenied" in err
    assert ("not a known app" if app == "intruder" else "may not ask for payments") in err
    assert harness.ledger.count() == 0


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("int64:0", "string:CNY", "bad_amount"),
        ("int64:-100", "string:CNY", "bad_amount"),
        ("int64:100", "string:cny", "bad_currency"),
        ("int64:100", "string:USD", "wrong_currency"),
        ("int32:100", "string:CNY", "takes (xsss), got (isss)"),
    ],
)
async def test_bad_amounts_and_currencies_get_clear_errors(
    harness: Harness, amount: str, currency: str, expected: str
) -> None:
    rc, _out, err = await harness.call("shop", "Authorize", amount, currency, "string:gems",
                                       "string:k")
    assert rc != 0
    assert "org.freedesktop.DBus.Error.InvalidArgs" in err and expected in err
    assert harness.ledger.count() == 0
    assert harness.events.events == []


async def test_idempotent_retry_over_the_bus(harness: Harness) -> None:
    first = await harness.authorize("shop", 4000, "same")
    again = await harness.authorize("shop", 4000, "same")
    assert first == again
    rc, _o, err = await harness.call("shop", "Authorize", "int64:4001", "string:CNY",
                                     "string:gems", "string:same")
    assert rc != 0 and "idempotency_conflict" in err


async def test_refund_and_status(harness: Harness) -> None:
    _d, request_id, _r = await harness.authorize("shop", 2000, "r")
    rc, out, err = await harness.call("shop", "Refund", f"string:{request_id}")
    assert rc == 0, err
    assert _strings(out) == ["refunded", "refunded"]
    rc, out, _ = await harness.call("shop", "Status", f"string:{request_id}")
    assert _strings(out)[0] == "refunded"
    rc, _out, err = await harness.call("shop", "Refund", "string:nonexistent")
    assert rc != 0 and "unknown_request" in err


async def _listen(address: str) -> tuple[MessageBus, asyncio.Queue[list[str]]]:
    bus = await MessageBus(bus_address=address).connect()
    queue: asyncio.Queue[list[str]] = asyncio.Queue()

    def on_message(msg: Message) -> bool:
        if msg.message_type is MessageType.SIGNAL and msg.member == "Decided":
            queue.put_nowait(list(msg.body))
        return False

    bus.add_message_handler(on_message)
    await bus.call(Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus", member="AddMatch", signature="s",
        body=[f"type='signal',interface='{INTERFACE}',member='Decided'"],
    ))
    return bus, queue


async def test_pending_purchase_is_decided_by_the_guardian_and_signalled(
    harness: Harness,
) -> None:
    bus, queue = await _listen(harness.address)
    decision, approved_id, reason = await harness.authorize("shop", 4000, "p1")
    assert (decision, reason) == ("pending", "ask_guardian")
    _d, expiring_id, _r = await harness.authorize("shop", 3500, "p2")
    # Both reserve their amounts: 7500 of 8000 are taken until answered.
    assert (await harness.authorize("shop", 501, "p3"))[::2] == ["denied", "over_daily_cap"]
    harness.ledger.decide(approved_id, approve=True, now=T0 + timedelta(minutes=1))
    await harness.service.announce_decisions()
    assert await asyncio.wait_for(queue.get(), 10) == [approved_id, "approved"]
    harness.now[0] = T0 + timedelta(minutes=31)  # the second one was never answered
    await harness.service.announce_decisions()
    assert await asyncio.wait_for(queue.get(), 10) == [expiring_id, "expired"]
    assert harness.ledger.get(expiring_id).status is PurchaseStatus.EXPIRED  # type: ignore[union-attr]
    assert (await harness.authorize("shop", 500, "p4"))[0] == "approved"  # expiry freed 3500
    bus.disconnect()


async def test_introspection_lists_the_interface(harness: Harness) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(harness.callers["intruder"]), f"--bus={harness.address}", "--print-reply",
        f"--dest={BUS_NAME}", OBJECT_PATH, "org.freedesktop.DBus.Introspectable.Introspect",
        stdout=asyncio.subprocess.PIPE)
    out_b, _ = await proc.communicate()
    assert 'name="Authorize"' in out_b.decode() and 'name="Decided"' in out_b.decode()


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="owning the name needs root under the policy")
async def test_shipped_bus_policy_lets_root_own_and_apps_call(
    tmp_path: Path, system_like_bus: str, callers: dict[str, Path]
) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    service = PaymentsService(
        ledger=ledger, policy=_policy,
        identifier=ExeMapIdentifier({str(callers["shop"]): "org.example.Shop"}),
        events=MemoryEventSink(), clock=lambda: T0, bus_address=system_like_bus,
    )
    await service.start()
    try:
        h = Harness(service, ledger, MemoryEventSink(), system_like_bus, callers, [T0])
        assert (await h.authorize("shop", 100, "k"))[0] == "approved"
        # The policy opens only our interface: other interfaces on our name stay closed.
        rc, _out, err = await h.call("shop", "Authorize")  # right interface, bad args
        assert rc != 0 and "InvalidArgs" in err
        proc = await asyncio.create_subprocess_exec(
            str(callers["shop"]), f"--bus={system_like_bus}", "--print-reply",
            f"--dest={BUS_NAME}", OBJECT_PATH, "org.example.Other.Method",
            stderr=asyncio.subprocess.PIPE)
        _o, err_b = await proc.communicate()
        assert proc.returncode != 0 and b"AccessDenied" in err_b
    finally:
        await service.stop()
        ledger.close()


def _on_real_time(ledger: Ledger, events: MemoryEventSink, bus_address: str,
                  callers: dict[str, Path]) -> PaymentsService:
    """The broker on the wall clock whose safety-net round is an hour away: what it
    announces within a test, it announced because it was woken (a write, an expiry)."""
    return PaymentsService(
        ledger=ledger, policy=_policy,
        identifier=ExeMapIdentifier({str(callers["shop"]): "org.example.Shop"}),
        events=events, clock=lambda: datetime.now(UTC), bus_address=bus_address,
        announce_interval=3600,
    )


@contextlib.asynccontextmanager
async def _woken_broker(ledger: Ledger, bus_address: str, callers: dict[str, Path]
                        ) -> AsyncIterator[tuple[Harness, asyncio.Queue[list[str]], str]]:
    """The broker on real time with a request pending (ask-to-buy over the threshold), a
    listener for Decided, and everything closed afterwards: (harness, Decided queue, id)."""
    events = MemoryEventSink()
    service = _on_real_time(ledger, events, bus_address, callers)
    await service.start()
    bus, queue = await _listen(bus_address)
    try:
        h = Harness(service, ledger, events, bus_address, callers, [T0])
        decision, request_id, _ = await h.authorize("shop", 4000, "pending")
        assert decision == "pending"
        yield h, queue, request_id
    finally:
        bus.disconnect()
        await service.stop()
        ledger.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="purchases approve is root-only")
async def test_end_to_end_guardian_approval_through_the_cli(
    tmp_path: Path, bus_address: str, callers: dict[str, Path]
) -> None:
    """App asks (pending) -> root CLI approves -> the broker signals Decided on its own:
    woken by the CLI's write to the ledger (no polling: its safety net is an hour here)."""
    from agent.cli.main import build_parser
    from agent.store.layout import StoreLayout

    layout = StoreLayout(tmp_path / "state")
    async with _woken_broker(layout.open_ledger(), bus_address, callers) as (h, queue, request_id):
        args = build_parser().parse_args(["purchases", "approve", "--state", str(layout.state),
                                          request_id])
        assert args.func(args) == 0
        assert await asyncio.wait_for(queue.get(), 10) == [request_id, "approved"]
        rc, out, _err = await h.call("shop", "Status", f"string:{request_id}")
        assert rc == 0 and "approved" in out
        assert [e.data["decision"] for e in h.events.events] == ["pending", "approved"]


async def test_a_broken_ledger_gives_a_clear_failure_not_a_timeout(harness: Harness) -> None:
    harness.ledger.close()
    rc, _out, err = await harness.call("shop", "Authorize", "int64:100", "string:CNY",
                                       "string:gems", "string:k")
    assert rc != 0
    assert "org.freedesktop.DBus.Error.Failed" in err and "unavailable" in err


def test_documented_interface_matches_the_service() -> None:
    """config/dbus/org.minormode.Payments1.xml and the exported interface agree."""
    import xml.etree.ElementTree as ET

    from agent.api.payments import _Interface

    doc = Path(__file__).parents[3] / "config" / "dbus" / "org.minormode.Payments1.xml"
    iface = ET.parse(doc).getroot().find("interface")
    assert iface is not None
    documented = {
        (m.tag, m.get("name")): [(a.get("direction", "out"), a.get("type")) for a in m]
        for m in iface
    }
    live = _Interface().introspect()
    exported = {("method", m.name): [(a.direction.value, a.signature) for a in m.in_args]
                + [("out", a.signature) for a in m.out_args] for m in live.methods}
    exported |= {("signal", s.name): [("out", a.signature) for a in s.args]
                 for s in live.signals}
    assert documented == exported


async def test_a_flood_of_purchase_requests_is_paced_per_app(harness: Harness) -> None:
    """Each Authorize with a new key is a ledger row: past the burst (10) the broker answers
    LimitsExceeded and writes nothing, so an app driven in a loop cannot fill the disk."""
    for i in range(10):
        assert (await harness.authorize("shop", 1, f"flood-{i}"))[0] == "approved"
    rc, _out, err = await harness.call("shop", "Authorize", "int64:1", "string:CNY", "string:gems",
                                       "string:flood-10")
    assert rc != 0 and "LimitsExceeded" in err and "too many purchase requests" in err
    assert len(harness.ledger.purchases()) == 10


async def test_a_pending_request_expires_when_due_without_polling(
    tmp_path: Path, bus_address: str, callers: dict[str, Path]
) -> None:
    """Expiry is scheduled for the first pending request's deadline (the safety net's
    interval is an hour): Decided(expired) arrives once the request's time is up."""
    ledger = Ledger(tmp_path / "ledger.db", pending_ttl=timedelta(seconds=1))
    async with _woken_broker(ledger, bus_address, callers) as (_h, queue, request_id):
        assert await asyncio.wait_for(queue.get(), 10) == [request_id, "expired"]
        assert ledger.next_expiry() is None
