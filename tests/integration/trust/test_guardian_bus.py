"""org.minormode.Guardian1 on a private system-like bus, with the real trust layer behind it.

The child (uid nobody) reads the trust state and nothing more; a stranger gets nothing;
root pairs the device with the reference guardian client and delivers signed messages
through the bus exactly as the JSON travels; bad input gets InvalidArgs naming the field.
Run behind the shipped bus policy and on a permissive bus (the service's own checks hold).
"""

from __future__ import annotations

import json
import pwd
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast import introspection as intr
from dbus_fast.aio import MessageBus
from support.sessionbus import CHILD_UID, calls_as
from support.trust_device import Device, policy_json, served

from agent.api.service import AgentService
from agent.dev import devbus
from protocol.guardian import ReferenceGuardian
from protocol.keys import Identity
from protocol.messages import GrantTime
from protocol.pairing import Offer, Reveal

ROOT = Path(__file__).parents[3]
XML = ROOT / "config" / "dbus" / "org.minormode.Guardian1.xml"
STRANGER_UID = pwd.getpwnam("games").pw_uid
PATH, IFACE = "/org/minormode/Guardian1", "org.minormode.Guardian1"


@dataclass
class Rig:
    bus: devbus.PrivateBus
    device: Device
    service: AgentService
    root: MessageBus

    async def call(self, member: str, signature: str = "", body: list[Any] | None = None,
                   interface: str = IFACE) -> Message:
        reply = await self.root.call(Message(destination="org.minormode.Agent1", path=PATH, interface=interface,
                                             member=member, signature=signature, body=body or []))
        assert reply is not None
        return reply

    async def as_user(self, uid: int, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        return await calls_as(uid, self.bus.address, [dict(c, path=PATH, interface=IFACE) for c in calls])

    async def pair(self, guardian: ReferenceGuardian, policy: dict[str, Any] | None = None) -> Message:
        offer = await self.call("PairingOffer", "s", [""])
        gp = guardian.start_pairing(Offer.from_json(json.loads(offer.body[0])))
        reveal = await self.call("PairingRespond", "s", [json.dumps(gp.response().to_json())])
        assert gp.on_reveal(Reveal.from_json(json.loads(reveal.body[0]))) == reveal.body[1]
        complete = guardian.finish_pairing(gp, self.device.now, policy=policy)
        return await self.call("PairingComplete", "sb", [json.dumps(complete.to_json()), True])


@pytest.fixture(params=["shipped-policy", "permissive-bus"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    bus = devbus.start_bus(permissive=request.param == "permissive-bus")
    try:
        async with served(tmp_path / "state", bus.address) as (device, service, root):
            yield Rig(bus, device, service, root)
    finally:
        bus.stop()


def _shape(node: intr.Node) -> dict[str, Any]:
    iface = next(i for i in node.interfaces if i.name == IFACE)
    return {
        "methods": sorted((m.name, tuple((a.name, a.signature) for a in m.in_args),
                           tuple((a.name, a.signature) for a in m.out_args),
                           tuple(sorted(m.annotations.items()))) for m in iface.methods),
        "signals": sorted((s.name, tuple((a.name, a.signature) for a in s.args)) for s in iface.signals),
        "properties": sorted((p.name, p.signature, p.access.value) for p in iface.properties),
    }


async def test_live_introspection_matches_the_documented_xml(rig: Rig) -> None:
    reply = await rig.call("Introspect", interface="org.freedesktop.DBus.Introspectable")
    assert _shape(intr.Node.parse(reply.body[0])) == _shape(intr.Node.parse(XML.read_text()))
    assert len(_shape(intr.Node.parse(XML.read_text()))["methods"]) == 9
    ET.fromstring(XML.read_text())


async def test_the_child_reads_the_trust_state_and_can_do_nothing_else(rig: Rig) -> None:
    child = await rig.as_user(CHILD_UID, {"member": "GetTrust"}, {"member": "PairingOffer", "signature": "s",
                                                                  "args": [""]},
                              {"member": "Deliver", "signature": "ss", "args": ["00" * 16, "{}"]})
    assert child[0]["ok"] and child[0]["body"][0]["Paired"] is False
    assert child[0]["body"][0]["DeviceId"] == rig.device.trust.device.id
    assert [r.get("error") for r in child[1:]] == ["org.freedesktop.DBus.Error.AccessDenied"] * 2
    stranger = await rig.as_user(STRANGER_UID, {"member": "GetTrust"})
    assert stranger[0]["error"] == "org.freedesktop.DBus.Error.AccessDenied"
    assert rig.device.trust.status().pairing == "idle"  # the child's PairingOffer started nothing


async def test_root_pairs_over_the_bus_and_a_signed_grant_applies(rig: Rig) -> None:
    g = ReferenceGuardian(Identity.generate(is_device=False, label="Mum"))
    done = await rig.pair(g, policy_json(2, budget={"daily_minutes": 20}))
    assert done.message_type is MessageType.METHOD_RETURN, done.body
    assert done.body[0] is True and "Mum" in done.body[1]
    trust = (await rig.call("GetTrust")).body[0]
    assert trust["Paired"].value and trust["PolicyVersion"].value == 2
    assert [list(x) for x in trust["Guardians"].value] == [[g.kid, "Mum"]]
    mid, sealed = g.decide(rig.device.trust.device.id, GrantTime(10, None), rig.device.now)
    got = await rig.call("Deliver", "ss", [mid, sealed.encode().decode()])
    assert got.body[0] == "applied"
    assert g.verify_ack(got.body[2].encode(), rig.device.trust.device.id).message == mid
    assert rig.device.agent.tick().budget_seconds == 30 * 60
    again = await rig.call("Deliver", "ss", [mid, sealed.encode().decode()])
    assert again.body[0] == "duplicate" and again.body[2] == got.body[2]


async def test_bad_input_gets_invalid_args_naming_the_field_and_changes_nothing(rig: Rig) -> None:
    await rig.call("PairingOffer", "s", [""])
    bad = await rig.call("PairingRespond", "s", ['{"guardian": 1}'])
    assert bad.message_type is MessageType.ERROR and bad.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert "response.guardian" in bad.body[0]
    not_json = await rig.call("PairingComplete", "sb", ["{{", True])
    assert not_json.error_name == "org.freedesktop.DBus.Error.InvalidArgs" and "complete" in not_json.body[0]
    unpaired = await rig.call("Deliver", "ss", ["zz", "{}"])
    assert unpaired.body[0] == "refused" and "message id" in unpaired.body[1]
    wrong_sig = await rig.call("Deliver", "s", ["x"])
    assert wrong_sig.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert not rig.device.trust.status().paired
