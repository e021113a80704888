"""Small helpers over dbus-fast's low-level API: call a method, subscribe to signals, and ask
the bus who a caller is. Used by the logind adapter, the agent's service and the helper."""

from __future__ import annotations

import asyncio
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

BUS_NAME = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
CALL_TIMEOUT = 10.0  # seconds; a hung peer must not stall enforcement forever


async def call(bus: MessageBus, destination: str, path: str, interface: str, member: str,
               signature: str = "", body: list[Any] | None = None, *,
               timeout: float = CALL_TIMEOUT, flags: MessageFlag = MessageFlag.NONE) -> Message:
    """Call a method; raise DBusError (name and text of the peer's error) if it failed or
    no answer came within `timeout` (CALL_TIMEOUT; longer only for a call that waits on a
    person, such as polkit asking for a password)."""
    message = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=body or [], flags=flags)
    try:
        reply = await asyncio.wait_for(bus.call(message), timeout)
    except TimeoutError:
        raise DBusError("org.freedesktop.DBus.Error.Timeout",
                        f"{destination} {member}: no answer in {timeout:g} s") from None
    if reply is None:
        raise DBusError("org.freedesktop.DBus.Error.NoReply", f"{member}: no reply")
    if reply.message_type is MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise DBusError(reply.error_name or "org.freedesktop.DBus.Error.Failed", text)
    return reply


async def add_match(bus: MessageBus, rule: str) -> None:
    await call(bus, BUS_NAME, BUS_PATH, BUS_NAME, "AddMatch", "s", [rule])


async def unix_user(bus: MessageBus, sender: str) -> int:
    """The unix uid the bus daemon saw when `sender` connected (not anything it claims)."""
    reply = await call(bus, BUS_NAME, BUS_PATH, BUS_NAME, "GetConnectionUnixUser", "s", [sender])
    return int(reply.body[0])


async def get_property(bus: MessageBus, destination: str, path: str, interface: str,
                       name: str) -> Any:
    reply = await call(bus, destination, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                       [interface, name])
    return reply.body[0].value


async def get_all(bus: MessageBus, destination: str, path: str, interface: str) -> dict[str, Any]:
    reply = await call(bus, destination, path, "org.freedesktop.DBus.Properties", "GetAll", "s",
                       [interface])
    return {k: v.value for k, v in reply.body[0].items()}
