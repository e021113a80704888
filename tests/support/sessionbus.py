"""Helpers for the session tests: script python-dbusmock's logind; wait for a condition;
call the agent as another user."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from agent.bus.calls import call, get_property

LOGIN1 = "org.freedesktop.login1"
MOCK = "org.freedesktop.DBus.Mock"
SESSION_IFACE = "org.freedesktop.login1.Session"
CHILD_UID = 65534  # the tests' child: `nobody`, so a client can run as the child with setuid
CHILD = "child"


def session_path(sid: str) -> str:
    return f"/org/freedesktop/login1/session/{sid}"


class FakeLogind:
    """Scripts dbusmock's logind the way the real one and a screen locker would behave."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def mock(self, path: str, member: str, signature: str, body: list[Any]) -> Message:
        return await call(self.bus, LOGIN1, path, MOCK, member, signature, body)

    async def add_session(
        self, sid: str, uid: int = CHILD_UID, active: bool = True, announce: bool = False
    ) -> str:
        await self.mock(
            "/org/freedesktop/login1",
            "AddSession",
            "ssusb",
            [sid, "seat0", uid, CHILD if uid == CHILD_UID else f"u{uid}", active],
        )
        if announce:
            await self.manager_signal(
                "SessionNew", "so", [Variant("s", sid), Variant("o", session_path(sid))]
            )
        return session_path(sid)

    async def remove_session(self, sid: str) -> None:
        await self.mock("/org/freedesktop/login1", "RemoveObject", "s", [session_path(sid)])
        await self.manager_signal(
            "SessionRemoved", "so", [Variant("s", sid), Variant("o", session_path(sid))]
        )

    async def set(self, sid: str, **props: bool | str) -> None:
        """PropertiesChanged on a session (Active, IdleHint, LockedHint, State)."""
        body = {k: Variant("b" if isinstance(v, bool) else "s", v) for k, v in props.items()}
        await self.mock(session_path(sid), "UpdateProperties", "sa{sv}", [SESSION_IFACE, body])

    async def manager_signal(self, name: str, signature: str, args: list[Variant]) -> None:
        await self.mock(
            "/org/freedesktop/login1",
            "EmitSignal",
            "sssav",
            ["org.freedesktop.login1.Manager", name, signature, args],
        )

    async def sleep(self, going: bool) -> None:
        await self.manager_signal("PrepareForSleep", "b", [Variant("b", going)])

    async def calls(self, method: str) -> list[list[Any]]:
        reply = await self.mock("/org/freedesktop/login1", "GetMethodCalls", "s", [method])
        return [[a.value for a in args] for _t, args in reply.body[0]]

    async def locked(self, sid: str) -> bool:
        return bool(await get_property(self.bus, LOGIN1, session_path(sid), SESSION_IFACE, "LockedHint"))

    async def inhibitors(self) -> list[list[Any]]:
        reply = await call(
            self.bus, LOGIN1, "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "ListInhibitors"
        )
        return [list(i) for i in reply.body[0]]


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Wait until `predicate()` holds; the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def is_error(reply: Message) -> bool:
    return reply.message_type is MessageType.ERROR


CLIENT = Path(__file__).with_name("dbus_client.py")


async def calls_as(uid: int, bus_address: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls made by a process of `uid` (Debian's python3 running dbus_client.py), so the
    uid the agent sees is the bus daemon's: one {"ok", "body"} or {"ok", "error", "message"}
    per call."""
    proc = await asyncio.create_subprocess_exec(
        "/usr/bin/python3", str(CLIENT), bus_address, json.dumps(calls),
        user=uid, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results
