"""Asking polkit whether a caller on the system bus may do an action:
`org.freedesktop.PolicyKit1.Authority.CheckAuthorization` for the caller's bus name (polkit
looks up its process, uid and session itself, so nothing the caller claims counts).

The agent's services ask for methods that declare an action (`agent.api.service.MethodSpec`
`action`): an adult at the tablet who authenticates as an administrator (`auth_admin`, in
config/polkit/org.minormode.policy). Without polkitd, or with one that does not answer in
time, the answer is "not authorised": fail closed, never "allowed".
"""

from __future__ import annotations

from dataclasses import dataclass

from dbus_fast import MessageFlag, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from agent.bus.calls import CALL_TIMEOUT, call

AUTHORITY = "org.freedesktop.PolicyKit1"
AUTHORITY_PATH = "/org/freedesktop/PolicyKit1/Authority"
AUTHORITY_INTERFACE = "org.freedesktop.PolicyKit1.Authority"
ALLOW_USER_INTERACTION = 0x1  # CheckAuthorizationFlags
# An interactive check waits for a person to type a password; the call itself runs in the
# background of the service (never in the enforcement loop), so only this bounds it.
INTERACTIVE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Authorization:
    authorized: bool
    challenge: bool  # polkit would authorise after authentication (the caller did not allow it)
    problem: str = ""  # why polkit gave no answer (not running, timed out)


async def check_authorization(bus: MessageBus, sender: str, action_id: str, *,
                              interactive: bool) -> Authorization:
    """polkit's answer for `sender` (a unique bus name) and `action_id`; `interactive` when
    the caller set ALLOW_INTERACTIVE_AUTHORIZATION on its call (polkit may then show an
    authentication dialog and the answer waits for it)."""
    subject = ["system-bus-name", {"name": Variant("s", sender)}]
    flags = ALLOW_USER_INTERACTION if interactive else 0
    try:
        reply = await call(bus, AUTHORITY, AUTHORITY_PATH, AUTHORITY_INTERFACE, "CheckAuthorization",
                           "(sa{sv})sa{ss}us", [subject, action_id, {}, flags, ""],
                           timeout=INTERACTIVE_TIMEOUT if interactive else CALL_TIMEOUT,
                           flags=MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive
                           else MessageFlag.NONE)
    except DBusError as exc:
        return Authorization(authorized=False, challenge=False, problem=f"{exc.type}: {exc.text}")
    authorized, challenge, _details = reply.body[0]
    return Authorization(authorized=bool(authorized), challenge=bool(challenge))
