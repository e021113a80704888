"""python-dbusmock's notification daemon as the child's desktop: what was shown, and a
click on one of its actions."""

from __future__ import annotations

from typing import Any

from dbus_fast import Variant
from dbus_fast.aio import MessageBus

from agent.bus.calls import call

MOCK = "org.freedesktop.DBus.Mock"
NOTIFY_PATH = "/org/freedesktop/Notifications"


def plain(value: Any) -> Any:
    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class FakeNotifications:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def notifies(self) -> list[list[Any]]:
        reply = await call(self.bus, "org.freedesktop.Notifications", NOTIFY_PATH, MOCK,
                           "GetMethodCalls", "s", ["Notify"])
        return [[plain(a.value) for a in args] for _t, args in reply.body[0]]

    async def click(self, nid: int, action: str) -> None:
        await call(self.bus, "org.freedesktop.Notifications", NOTIFY_PATH, MOCK, "EmitSignal",
                   "sssav", ["org.freedesktop.Notifications", "ActionInvoked", "us",
                             [Variant("u", nid), Variant("s", action)]])
