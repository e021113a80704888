"""org.minormode.Agent1 on a private system-like bus, with the real Agent behind it.

Callers run as real other users (the child = nobody, a stranger = games) in subprocesses,
so the uid the service sees comes from the bus daemon's credentials. Each refusal is
checked to change nothing. Run twice: behind the shipped bus policy, and on a permissive
bus, which proves the service's own checks hold without the policy file.
"""

from __future__ import annotations

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
from support.runtime import agent_on
from support.scenario import iso, policy
from support.sessionbus import CHILD_UID, calls_as, until

from agent.api.agent_controller import AgentController
from agent.api.service import AgentService
from agent.core import guardian_code
from agent.dev import devbus
from agent.dev.clock import ManualClock
from agent.runtime.agent import Agent
from agent.store.events import EventKind
from agent.store.state import StateStore

ROOT = Path(__file__).parents[3]
XML = ROOT / "config" / "dbus" / "org.minormode.Agent1.xml"
STRANGER_UID = pwd.getpwnam("games").pw_uid  # another account on the tablet; the bus
# daemon needs a passwd entry for a connecting uid
SECRET = bytes(range(100, 132))
WAIVED = ["windows", "curfew", "school", "rest", "games"]


@dataclass
class Rig:
    bus: devbus.PrivateBus
    agent: Agent
    clock: ManualClock
    controller: AgentController
    service: AgentService
    root: MessageBus
    tmp: Path

    async def as_user(self, uid: int, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        return await calls_as(uid, self.bus.address, list(calls))

    async def root_call(self, member: str, signature: str = "", body: list[Any] | None = None,
                        interface: str = "org.minormode.Agent1") -> Message:
        reply = await self.root.call(Message(destination="org.minormode.Agent1",
                                             path="/org/minormode/Agent1", interface=interface,
                                             member=member, signature=signature, body=body or []))
        assert reply is not None
        return reply

    def events(self, kind: EventKind) -> list[Any]:
        return self.agent.store.events(kind)

    def minutes(self, n: float) -> None:
        self.clock.advance(n * 60)
        self.agent.tick()


def call(member: str, signature: str = "", *args: Any) -> dict[str, Any]:
    return {"member": member, "signature": signature, "args": list(args)}


@pytest.fixture(params=["shipped-policy", "permissive-bus"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    bus = devbus.start_bus(permissive=request.param == "permissive-bus")
    clock = ManualClock(iso("2026-11-28T10:00"), zone="Asia/Shanghai")
    agent = agent_on(StateStore(tmp_path / "state.sqlite"), clock)
    agent.policy = policy(waive=WAIVED, budget={"every_day": 10},
                          enforcement={"language": "en"})
    controller = AgentController(agent, guardian_secret=SECRET, unlock_minutes=30)
    service = AgentService(controller, CHILD_UID, bus_address=bus.address)
    controller.answered = service.request_answered
    agent.subscribe(service.refresh)
    agent.set_counting(True)
    agent.tick()
    await service.start()
    root = await MessageBus(bus_address=bus.address).connect()
    try:
        yield Rig(bus, agent, clock, controller, service, root, tmp_path)
    finally:
        root.disconnect()
        await service.stop()
        agent.store.close()
        bus.stop()


# --------------------------------------------------------------------------- introspection


def _shape(node: intr.Node) -> dict[str, Any]:
    iface = next(i for i in node.interfaces if i.name == "org.minormode.Agent1")
    return {
        "methods": sorted((m.name, tuple((a.name, a.signature, a.direction.value) for a in m.in_args),
                           tuple((a.name, a.signature) for a in m.out_args),
                           tuple(sorted(m.annotations.items()))) for m in iface.methods),
        "signals": sorted((s.name, tuple((a.name, a.signature) for a in s.args)) for s in iface.signals),
        "properties": sorted((p.name, p.signature, p.access.value) for p in iface.properties),
    }


async def test_live_introspection_matches_the_documented_xml(rig: Rig) -> None:
    reply = await rig.root_call("Introspect", interface="org.freedesktop.DBus.Introspectable")
    live = intr.Node.parse(reply.body[0])
    documented = intr.Node.parse(XML.read_text())
    assert _shape(live) == _shape(documented)
    assert len(_shape(documented)["methods"]) == 6
    ET.fromstring(XML.read_text())  # well-formed, comments and all


# --------------------------------------------------------------------------- properties


async def test_properties_and_status(rig: Rig) -> None:
    child = await rig.as_user(CHILD_UID, {
        "interface": "org.freedesktop.DBus.Properties", "member": "GetAll", "signature": "s",
        "args": ["org.minormode.Agent1"]}, call("GetStatus"))
    props, status = child[0]["body"][0], child[1]["body"][0]
    assert props == {"MinorMode": True, "AgeBand": "8-12", "Locked": False, "LockReason": "",
                     "RemainingSeconds": 600, "NextChange": props["NextChange"]}
    assert props["NextChange"] == int(iso("2026-11-28T10:05").timestamp())  # the 5-min warning
    assert status["UsedSeconds"] == 0 and status["BudgetSeconds"] == 600
    assert status["Language"] == "en" and status["Locked"] is False

    changes: list[dict[str, Any]] = []

    def on_signal(msg: Message) -> None:
        if msg.member == "PropertiesChanged" and msg.path == "/org/minormode/Agent1":
            changes.append({k: v.value for k, v in msg.body[1].items()})

    rig.root.add_message_handler(on_signal)
    await rig.root.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                body=["type='signal',path='/org/minormode/Agent1'"]))
    rig.minutes(10)
    await until(lambda: any(c.get("Locked") for c in changes), what="PropertiesChanged Locked")
    locked = next(c for c in changes if c.get("Locked"))
    assert locked["LockReason"] == "budget_spent" and locked["RemainingSeconds"] == -1


# --------------------------------------------------------------------------- child methods


async def test_child_methods_with_good_arguments(rig: Rig) -> None:
    results = await rig.as_user(
        CHILD_UID,
        call("RequestMoreTime", "us", 15, "作业还没写完 ✍️"),
        call("Report", "ss", "bullying", "someone keeps sending me mean messages"),
        call("Report", "ss", "help", ""),
    )
    assert all(r["ok"] for r in results), results
    request_id = results[0]["body"][0]
    assert list(rig.controller.pending) == [request_id]
    [asked] = rig.events(EventKind.TIME_REQUESTED)
    assert asked.data == {"request_id": request_id, "minutes": 15, "note": "作业还没写完 ✍️"}
    reports = rig.events(EventKind.REPORT)
    assert [(r.data["kind"], r.data["report_id"]) for r in reports] == [
        ("bullying", results[1]["body"][0]), ("help", results[2]["body"][0])]

    # The guardian answers (through sync): the child hears it, and gets the minutes.
    answers: list[list[Any]] = []

    def on_signal(msg: Message) -> None:
        if msg.member == "RequestAnswered":
            answers.append(list(msg.body))

    rig.root.add_message_handler(on_signal)
    await rig.root.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                body=["type='signal',member='RequestAnswered'"]))
    assert rig.controller.answer_request(request_id, approved=True)
    await until(lambda: bool(answers), what="RequestAnswered")
    assert answers == [[request_id, True, 15, "Your guardian said yes: 15 more minutes."]]
    assert rig.agent.decision is not None and rig.agent.decision.budget_seconds == 25 * 60


BAD_CHILD_CALLS = [
    (call("RequestMoreTime", "us", 0, "x"), "minutes: 0 is outside 1..240"),
    (call("RequestMoreTime", "us", 241, "x"), "minutes: 241 is outside 1..240"),
    (call("RequestMoreTime", "us", 10, "x" * 501), "note: 501 characters, at most 500"),
    (call("RequestMoreTime", "us", 10, "bell\a"), "note: character 4 (U+0007) is not allowed"),
    (call("RequestMoreTime", "us", 10, "rtl\u202eevil"), "(U+202E) is not allowed"),
    (call("RequestMoreTime", "is", 10, "x"), "RequestMoreTime takes (us), got (is)"),
    (call("RequestMoreTime", "u", 10), "takes (us), got (u)"),
    (call("Report", "ss", "spam", "x"), "kind: 'spam' is not one of help, harmful_content"),
    (call("Report", "ss", "help", "y" * 2001), "note: 2001 characters, at most 2000"),
    (call("EnterGuardianCode", "s", "1234"), "code: must be exactly 8 digits"),
    (call("EnterGuardianCode", "s", "1234567a"), "code: must be exactly 8 digits"),
    (call("EnterGuardianCode", "s", "١٢٣٤٥٦٧٨"), "code: must be exactly 8 digits"),
]


async def test_child_methods_with_bad_arguments_change_nothing(rig: Rig) -> None:
    results = await rig.as_user(CHILD_UID, *(c for c, _ in BAD_CHILD_CALLS))
    for (sent, expected), got in zip(BAD_CHILD_CALLS, results, strict=True):
        assert got["ok"] is False, sent
        assert got["error"] == "org.freedesktop.DBus.Error.InvalidArgs", (sent, got)
        assert expected in got["message"], (sent, got)
    assert rig.controller.pending == {}
    assert rig.events(EventKind.TIME_REQUESTED) == [] and rig.events(EventKind.REPORT) == []
    assert rig.controller.code_state == guardian_code.CodeState()  # no failure counted


async def test_unknown_method_is_an_error(rig: Rig) -> None:
    [got] = await rig.as_user(CHILD_UID, call("Uninstall"))
    assert got["ok"] is False
    # The shipped policy refuses at the bus; a permissive bus lets the service answer.
    assert got["error"] in ("org.freedesktop.DBus.Error.AccessDenied",
                            "org.freedesktop.DBus.Error.UnknownMethod")


# --------------------------------------------------------------------------- who may call


ADMIN_CALLS = [call("LoadPolicy", "s", "/etc/passwd"), call("GrantMinutes", "us", 60, "please")]
CHILD_CALLS = [call("RequestMoreTime", "us", 10, "x"), call("Report", "ss", "other", "x"),
               call("EnterGuardianCode", "s", "12345678")]


async def test_a_stranger_is_refused_everything(rig: Rig) -> None:
    before = rig.agent.decision
    results = await rig.as_user(STRANGER_UID, call("GetStatus"), *CHILD_CALLS, *ADMIN_CALLS)
    for got in results:
        assert got == {"ok": False, "error": "org.freedesktop.DBus.Error.AccessDenied",
                       "message": got["message"]}
    assert rig.controller.pending == {} and rig.events(EventKind.REPORT) == []
    assert rig.controller.code_state == guardian_code.CodeState()
    assert rig.agent.store.grants(rig.agent.now()) == []
    assert rig.agent.decision == before


async def test_the_child_may_not_call_admin_methods(rig: Rig) -> None:
    results = await rig.as_user(CHILD_UID, *ADMIN_CALLS)
    assert [r["error"] for r in results] == ["org.freedesktop.DBus.Error.AccessDenied"] * 2
    assert rig.agent.store.grants(rig.agent.now()) == []
    assert rig.events(EventKind.POLICY_LOADED) == [] and rig.events(EventKind.POLICY_REJECTED) == []


async def test_root_may_not_speak_for_the_child(rig: Rig) -> None:
    reply = await rig.root_call("RequestMoreTime", "us", [10, "x"])
    assert reply.message_type is MessageType.ERROR
    assert reply.error_name == "org.freedesktop.DBus.Error.AccessDenied"
    assert rig.controller.pending == {}


# --------------------------------------------------------------------------- admin methods


async def test_admin_methods(rig: Rig) -> None:
    reply = await rig.root_call("GrantMinutes", "us", [20, "support visit"])
    assert reply.message_type is MessageType.METHOD_RETURN and reply.body[0] is True
    assert rig.agent.decision is not None and rig.agent.decision.budget_seconds == 30 * 60
    props = await rig.root_call("Get", "ss", ["org.minormode.Agent1", "RemainingSeconds"],
                                interface="org.freedesktop.DBus.Properties")
    assert props.body[0].value == 30 * 60

    good = rig.tmp / "policy.toml"
    good.write_text('version = 2\nage_band = "12-16"\ntimezone = "Asia/Shanghai"\n')
    reply = await rig.root_call("LoadPolicy", "s", [str(good)])
    assert reply.body == [True, "version 2 loaded"]
    assert rig.service.interface.status.age_band == "12-16"
    assert rig.agent.decision is not None
    budget = rig.agent.decision.budget_seconds

    bad = rig.tmp / "bad.toml"
    bad.write_text('version = 3\nage_band = "99"\ntimezone = "Asia/Shanghai"\n')
    reply = await rig.root_call("LoadPolicy", "s", [str(bad)])
    assert reply.body[0] is False and "age_band" in reply.body[1]
    assert rig.agent.policy.version == 2

    for member, sig, body, expected in [
        ("LoadPolicy", "s", ["relative/policy.toml"], "is not absolute"),
        ("LoadPolicy", "s", [str(rig.tmp / "missing.toml")], "is not a readable regular file"),
        ("LoadPolicy", "s", [str(rig.tmp)], "is not a readable regular file"),
        ("GrantMinutes", "us", [0, "x"], "minutes: 0 is outside 1..720"),
        ("GrantMinutes", "us", [721, "x"], "minutes: 721 is outside 1..720"),
        ("GrantMinutes", "us", [10, "\x1b[31m"], "(U+001B) is not allowed"),
    ]:
        reply = await rig.root_call(member, sig, body)
        assert reply.message_type is MessageType.ERROR, body
        assert reply.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
        assert expected in reply.body[0], reply.body
    assert rig.agent.policy.version == 2
    assert rig.agent.decision.budget_seconds == budget


# --------------------------------------------------------------------------- guardian code


async def test_guardian_code_unlocks_for_the_granted_time_once(rig: Rig) -> None:
    rig.minutes(10)
    assert rig.agent.decision is not None and rig.agent.decision.locked
    code = guardian_code.code_at(SECRET, rig.agent.now())
    [ok, again] = await rig.as_user(CHILD_UID, call("EnterGuardianCode", "s", code),
                                    call("EnterGuardianCode", "s", code))
    assert ok["body"] == [True, "Guardian code accepted: unlocked for 30 minutes."]
    assert again["body"] == [False, "That guardian code was already used."]
    assert rig.agent.decision is not None and not rig.agent.decision.locked
    assert rig.service.interface.status.locked is False
    rig.minutes(29)
    assert not rig.agent.decision.locked
    rig.minutes(1.5)
    assert rig.agent.decision.locked  # the unlock expired; the budget is still spent


async def test_five_wrong_codes_start_the_back_off(rig: Rig) -> None:
    rig.minutes(10)
    right = guardian_code.code_at(SECRET, rig.agent.now())
    wrong = "00000000" if right != "00000000" else "11111111"
    results = await rig.as_user(CHILD_UID, *[call("EnterGuardianCode", "s", wrong)] * 5,
                                call("EnterGuardianCode", "s", right))
    messages = [r["body"] for r in results]
    assert messages[:4] == [[False, "That guardian code is not right."]] * 4
    assert messages[4] == [False, "Too many wrong codes. Try again in 1 minute."]
    assert messages[5] == [False, "Too many wrong codes. Try again in 1 minute."]
    assert rig.agent.decision is not None and rig.agent.decision.locked
    rig.minutes(0.55)  # the wait is over: a fresh code works
    fresh = guardian_code.code_at(SECRET, rig.agent.now())
    [ok] = await rig.as_user(CHILD_UID, call("EnterGuardianCode", "s", fresh))
    assert ok["body"][0] is True


# --------------------------------------------------------------------------- signals


async def test_notices_become_signals(rig: Rig) -> None:
    got: list[tuple[str, list[Any]]] = []

    def on_signal(msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and msg.interface == "org.minormode.Agent1":
            got.append((msg.member or "", list(msg.body)))

    rig.root.add_message_handler(on_signal)
    await rig.root.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                body=["type='signal',interface='org.minormode.Agent1'"]))
    rig.service.warning(5, "5 minutes left. Time to finish up.")
    rig.service.rest_reminder("rest")
    rig.service.time_up("budget_spent", "Today's screen time is used up.")
    rig.service.app_blocked("org.example.Game", "It is not game time now.")
    await until(lambda: len(got) == 4, what="four signals")
    assert got == [("Warning", [5, "5 minutes left. Time to finish up."]),
                   ("RestReminder", ["rest"]),
                   ("TimeUp", ["budget_spent", "Today's screen time is used up."]),
                   ("AppBlocked", ["org.example.Game", "It is not game time now."])]


async def test_answers_to_requests_from_before_a_restart(rig: Rig) -> None:
    """Pending requests live in memory; the guardian's answer names its minutes, so an answer
    that arrives after a restart still grants them."""
    assert rig.controller.answer_request("asked-yesterday", approved=True, minutes=10) is False
    assert rig.agent.decision is not None and rig.agent.decision.budget_seconds == 20 * 60
    assert rig.controller.answer_request("unknown", approved=True) is False  # nothing to grant
    assert rig.agent.decision.budget_seconds == 20 * 60


async def test_calls_without_an_interface_name_are_checked_too(rig: Rig) -> None:
    """D-Bus allows a method call without an interface; it must not bypass the uid check."""
    def bare(member: str, signature: str, body: list[Any]) -> Message:
        return Message(destination="org.minormode.Agent1", path="/org/minormode/Agent1",
                       member=member, signature=signature, body=body)

    refused = await rig.root.call(bare("RequestMoreTime", "us", [10, "x"]))
    assert refused is not None and refused.error_name == "org.freedesktop.DBus.Error.AccessDenied"
    assert rig.controller.pending == {}
    granted = await rig.root.call(bare("GrantMinutes", "us", [5, "bare"]))
    assert granted is not None and granted.message_type is MessageType.METHOD_RETURN
    assert rig.agent.decision is not None and rig.agent.decision.budget_seconds == 15 * 60


async def test_a_flood_of_reports_is_capped_and_counted_not_written_per_call(rig: Rig) -> None:
    """Report had no cap (RequestMoreTime has 20 pending): each call was a journal record
    and a sealed message for the guardian. Now both pass the daemon's flood gates: a
    burst passes, the rest get LimitsExceeded, and the refusals become one counted event."""
    from agent.store.floodsink import FloodSink

    sink = FloodSink(rig.agent.store, rig.agent.clock.latest)
    rig.controller.admit = sink.admit
    flood = [call("Report", "ss", "help", f"attempt {i}") for i in range(200)]
    flood += [call("RequestMoreTime", "us", 5, f"please {i}") for i in range(50)]
    results = await rig.as_user(CHILD_UID, *flood)
    reports, requests = results[:200], results[200:]
    assert sum(r["ok"] for r in reports) == 5 and sum(r["ok"] for r in requests) == 5
    refused = [r for r in results if not r["ok"]]
    assert {r["error"] for r in refused} == {"org.freedesktop.DBus.Error.LimitsExceeded"}
    assert len(rig.events(EventKind.REPORT)) == 5 and len(rig.controller.pending) == 5
    assert sink.flush() == 2
    aggregated = [e.data for e in rig.events(EventKind.REPORT) if "suppressed" in e.data]
    assert aggregated == [{"kind": "help", "reason": "flood", "suppressed": 195}]
    asked = [e.data for e in rig.events(EventKind.TIME_REQUESTED) if "suppressed" in e.data]
    assert asked == [{"kind": "time_requested", "reason": "flood", "suppressed": 45}]
    assert sink.flush() == 0  # counted once
