"""polkit beside the uid checks: an admin method that declares a polkit action (Agent1's
GrantMinutes, Guardian1's StartPairing and PairingAbort) serves another local user, an
adult at the tablet, when polkit (python-dbusmock's polkitd template on a private system
bus) authorises that action; the child is refused even when polkit would allow anything;
a method without an action stays root's; without polkitd the adult is refused (fail
closed). Callers are real other users in subprocesses (the bus daemon's credentials), and
every refusal changes nothing."""

from __future__ import annotations

import pwd
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from support.sessionbus import CHILD_UID, calls_as
from support.trust_device import Device, served

from agent.api.guardian_service import PAIRING_ACTION
from agent.api.service import METHODS
from agent.bus.polkit import AUTHORITY, AUTHORITY_PATH
from agent.dev import devbus

ROOT = Path(__file__).parents[3]
CLIENT = ROOT / "tests" / "support" / "dbus_client.py"
ADULT_UID = pwd.getpwnam("games").pw_uid  # another account on the tablet: a guardian's
GRANT_TIME = "org.minormode.grant-time"
DENIED = "org.freedesktop.DBus.Error.AccessDenied"
GUARDIAN = {"path": "/org/minormode/Guardian1", "interface": "org.minormode.Guardian1"}


def call(member: str, signature: str = "", *args: Any, **where: str) -> dict[str, Any]:
    return {"member": member, "signature": signature, "args": list(args), **where}


@dataclass
class Rig:
    bus: devbus.PrivateBus
    device: Device
    root: MessageBus

    async def as_user(self, uid: int, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        return await calls_as(uid, self.bus.address, list(calls))

    async def polkit_allows(self, *actions: str, unknown: bool = False) -> None:
        """What the fake polkitd answers from now on (its mock interface)."""
        for member, signature, body in (("SetAllowed", "as", [list(actions)]), ("AllowUnknown", "b", [unknown])):
            reply = await self.root.call(Message(destination=AUTHORITY, path=AUTHORITY_PATH,
                                                 interface="org.freedesktop.DBus.Mock", member=member,
                                                 signature=signature, body=body))
            assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply

    def grants(self) -> list[Any]:
        return self.device.agent.store.grants(self.device.agent.now())


async def _rig(tmp_path: Path, *, polkitd: bool) -> AsyncIterator[Rig]:
    bus = devbus.start_bus()  # the shipped bus policy: it lets the adult's calls reach the service
    try:
        if polkitd:
            bus.start_mock("polkitd")
        async with served(tmp_path / "state", bus.address) as (device, _service, root):
            yield Rig(bus, device, root)
    finally:
        bus.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, polkitd=True):
        yield r


@pytest.fixture
async def rig_without_polkitd(tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, polkitd=False):
        yield r


async def test_an_adult_polkit_authorises_may_grant_time(rig: Rig) -> None:
    await rig.polkit_allows(GRANT_TIME)
    [got] = await rig.as_user(ADULT_UID, call("GrantMinutes", "us", 15, "homework project"))
    assert got == {"ok": True, "body": [True, got["body"][1]]}, got
    [grant] = rig.grants()
    assert grant.minutes == 15


async def test_an_adult_polkit_does_not_authorise_is_refused_and_nothing_changes(rig: Rig) -> None:
    await rig.polkit_allows(PAIRING_ACTION)  # another action, not this one
    before = rig.device.agent.decision
    [got] = await rig.as_user(ADULT_UID, call("GrantMinutes", "us", 15, "please"))
    assert got["ok"] is False and got["error"] == DENIED
    assert f"not allowed for uid {ADULT_UID} (polkit: {GRANT_TIME} not authorised)" in got["message"]
    assert rig.grants() == [] and rig.device.agent.decision == before


async def test_the_child_is_refused_whatever_polkit_would_say(rig: Rig) -> None:
    await rig.polkit_allows(GRANT_TIME, PAIRING_ACTION, unknown=True)
    results = await rig.as_user(CHILD_UID, call("GrantMinutes", "us", 15, "please"),
                                call("StartPairing", **GUARDIAN), call("PairingAbort", **GUARDIAN))
    for got in results:
        assert got["ok"] is False and got["error"] == DENIED, got
        assert "polkit" not in got["message"]  # polkit was never asked for the child
    assert rig.grants() == []


async def test_a_method_without_an_action_stays_roots(rig: Rig, tmp_path: Path) -> None:
    await rig.polkit_allows(unknown=True)  # polkit would allow any action at all
    assert METHODS["LoadPolicy"].action is None
    good = tmp_path / "policy.toml"
    good.write_text('version = 9\nage_band = "12-16"\ntimezone = "Asia/Shanghai"\n')
    [got] = await rig.as_user(ADULT_UID, call("LoadPolicy", "s", str(good)))
    assert got["ok"] is False and got["error"] == DENIED
    assert rig.device.agent.policy.version != 9


async def test_an_adult_polkit_authorises_may_start_and_stop_pairing(rig: Rig) -> None:
    refused = await rig.as_user(ADULT_UID, call("StartPairing", **GUARDIAN))
    assert refused[0]["error"] == DENIED and PAIRING_ACTION in refused[0]["message"]
    await rig.polkit_allows(PAIRING_ACTION)
    started, aborted = await rig.as_user(ADULT_UID, call("StartPairing", **GUARDIAN),
                                         call("PairingAbort", **GUARDIAN))
    # Past the authorisation: the trust layer answers (this device has no dashboard to pair
    # through, so StartPairing's own answer may be a refusal, but never AccessDenied).
    assert started.get("error") != DENIED, started
    assert aborted == {"ok": True, "body": []}, aborted


async def test_without_polkitd_the_adult_is_refused(rig_without_polkitd: Rig) -> None:
    [got] = await rig_without_polkitd.as_user(ADULT_UID, call("GrantMinutes", "us", 15, "please"))
    assert got["ok"] is False and got["error"] == DENIED and GRANT_TIME in got["message"]
    assert rig_without_polkitd.grants() == []
    # root is unaffected: its uid is enough, polkit is not asked
    reply = await rig_without_polkitd.root.call(Message(
        destination="org.minormode.Agent1", path="/org/minormode/Agent1", interface="org.minormode.Agent1",
        member="GrantMinutes", signature="us", body=[5, "support"]))
    assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply.body
