"""The agent's D-Bus service `org.minormode.Agent1` at /org/minormode/Agent1 (system bus).

Who may call what comes from the bus's own credentials for the calling connection
(GetConnectionUnixUser of the sender), never from arguments: the configured child uid may
call the child methods, uid 0 the admin methods, anyone else gets
org.freedesktop.DBus.Error.AccessDenied. An admin method that declares a polkit action
(GrantMinutes, Guardian1's StartPairing and PairingAbort) may also be called by another
local user, an adult at the tablet, whom polkit authorises for it (`auth_admin`:
config/polkit/org.minormode.policy); the child's uids are refused without asking polkit.
dbus-fast's method handlers do not see the caller, so method calls on this interface are
taken by a low-level message handler that asks the bus for the uid first (and polkit,
where a method declares an action), validates every argument (a bad one gets InvalidArgs
and changes nothing), then calls the `Controller`. Every method is one row of `METHODS`:
its arguments, the role allowed to call it, its polkit action if any, and its handler (as
firewalld declares the authorisation of each method), so no method can be listed without
saying who may call it and what it does; the action is in the introspection too (the
annotation org.minormode.PolkitAction). Properties and signals use dbus-fast's ordinary
machinery. The interface is documented in config/dbus/org.minormode.Agent1.xml; a test
checks the live introspection against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, PropertyAccess, Variant
from dbus_fast import introspection as intr
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusInt64, DBusSignature, DBusStr
from dbus_fast.constants import ArgDirection, RequestNameReply
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_property, dbus_signal

from agent.api import validate
from agent.api.controller import Controller, LimitExceededError, Status
from agent.bus.background import BackgroundTasks
from agent.bus.calls import unix_user
from agent.bus.polkit import Authorization, check_authorization
from agent.core.accounts import uid_set

log = logging.getLogger("minormode.api")

BUS_NAME = "org.minormode.Agent1"
INTERFACE = "org.minormode.Agent1"
OBJECT_PATH = "/org/minormode/Agent1"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
LIMIT_EXCEEDED = "org.freedesktop.DBus.Error.LimitsExceeded"
INTERACTIVE_AUTHORIZATION_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
POLKIT_ACTION_ANNOTATION = "org.minormode.PolkitAction"  # in the introspection, per method
ROOT_UID = 0


class Role(Enum):
    CHILD = "child"  # the configured child uid only
    READER = "reader"  # the child or root
    ADMIN = "admin"  # root only


# A handler validates the call's arguments (raising validate.InvalidArgumentError) and
# returns the reply body; `changes` says the call may change the status (refresh after).
Handler = Callable[[Any, list[Any]], list[Any]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    in_args: tuple[tuple[str, str], ...]
    out_args: tuple[tuple[str, str], ...]
    role: Role
    handler: Handler
    changes: bool = False
    # An admin method's polkit action: another local user (never the child) whom polkit
    # authorises for it may call it too. None: the role's uids only.
    action: str | None = None

    @property
    def in_signature(self) -> str:
        return "".join(sig for _, sig in self.in_args)

    @property
    def out_signature(self) -> str:
        return "".join(sig for _, sig in self.out_args)


def _get_status(c: Controller, _args: list[Any]) -> list[Any]:
    return [status_dict(c.get_status())]


def _request_more_time(c: Controller, args: list[Any]) -> list[Any]:
    minutes = validate.minutes("minutes", args[0], validate.REQUEST_MINUTES)
    note = validate.text("note", args[1], validate.NOTE_MAX)
    return [c.request_more_time(minutes, note)]


def _report(c: Controller, args: list[Any]) -> list[Any]:
    kind = validate.report_kind(args[0])
    note = validate.text("note", args[1], validate.REPORT_NOTE_MAX)
    return [c.report(kind, note)]


def _enter_guardian_code(c: Controller, args: list[Any]) -> list[Any]:
    result = c.enter_guardian_code(validate.guardian_code(args[0]))
    return [result.granted, result.message]


def _load_policy(c: Controller, args: list[Any]) -> list[Any]:
    loaded = c.load_policy(validate.policy_path(args[0]))
    return [loaded.ok, loaded.message]


def _grant_minutes(c: Controller, args: list[Any]) -> list[Any]:
    minutes = validate.minutes("minutes", args[0], validate.GRANT_MINUTES)
    reason = validate.text("reason", args[1], validate.NOTE_MAX)
    granted = c.grant_minutes(minutes, reason)
    return [granted.ok, granted.message]


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("GetStatus", (), (("status", "a{sv}"),), Role.READER, _get_status),
    MethodSpec("RequestMoreTime", (("minutes", "u"), ("note", "s")), (("request_id", "s"),),
               Role.CHILD, _request_more_time),
    MethodSpec("Report", (("kind", "s"), ("note", "s")), (("report_id", "s"),), Role.CHILD, _report),
    MethodSpec("EnterGuardianCode", (("code", "s"),), (("granted", "b"), ("message", "s")),
               Role.CHILD, _enter_guardian_code, changes=True),
    MethodSpec("LoadPolicy", (("path", "s"),), (("ok", "b"), ("message", "s")), Role.ADMIN,
               _load_policy, changes=True),
    MethodSpec("GrantMinutes", (("minutes", "u"), ("reason", "s")), (("ok", "b"), ("message", "s")),
               Role.ADMIN, _grant_minutes, changes=True, action="org.minormode.grant-time"),
)}

SIGNAL_ARGS: dict[str, tuple[str, ...]] = {
    "Warning": ("minutes_left", "message"),
    "RestReminder": ("message",),
    "TimeUp": ("reason", "message"),
    "RequestAnswered": ("request_id", "approved", "minutes", "message"),
    "AppBlocked": ("app_id", "message"),
}

SignatureUS = Annotated[list[Any], DBusSignature("us")]
SignatureSS = Annotated[list[Any], DBusSignature("ss")]
SignatureSBUS = Annotated[list[Any], DBusSignature("sbus")]

_EMPTY = Status(minor_mode=True, age_band="", locked=False, lock_reason="", lock_message="",
                remaining_seconds=-1, next_change=0, used_seconds=0, budget_seconds=-1,
                language="zh-CN", policy_version=0)


def table_introspection(iface: intr.Interface, methods: dict[str, MethodSpec],
                        signal_args: dict[str, tuple[str, ...]]) -> intr.Interface:
    """An interface's introspection with its methods listed from a method table (they are
    dispatched by `AgentService`, not by dbus-fast) and its signal arguments named."""
    iface.methods = [
        intr.Method(m.name,
                    [intr.Arg(sig, ArgDirection.IN, name) for name, sig in m.in_args],
                    [intr.Arg(sig, ArgDirection.OUT, name) for name, sig in m.out_args],
                    {POLKIT_ACTION_ANNOTATION: m.action} if m.action else None)
        for m in methods.values()
    ]
    for sig in iface.signals:  # dbus-fast leaves signal arguments unnamed
        names = signal_args[sig.name]
        if len(names) != len(sig.args):
            raise AssertionError(f"signal arguments of {sig.name} do not match its signature")
        for arg, name in zip(sig.args, names, strict=True):
            arg.name = name
    return iface


@dataclass(frozen=True)
class BusObject:
    """Another object this service exports (one object per concept), with its own method
    table; `target` is what its handlers act on."""

    path: str
    interface_name: str
    interface: ServiceInterface
    methods: dict[str, MethodSpec]
    target: Any
    on_change: Callable[[], None] | None = None  # after a method that changes state


class Agent1Interface(ServiceInterface):
    """Properties and signals; methods are listed from METHODS (dispatched by `AgentService`)."""

    def __init__(self) -> None:
        super().__init__(INTERFACE)
        self.status = _EMPTY

    def introspect(self) -> intr.Interface:
        return table_introspection(super().introspect(), METHODS, SIGNAL_ARGS)

    @dbus_property(access=PropertyAccess.READ, name="MinorMode")
    def minor_mode_property(self) -> DBusBool:
        return self.status.minor_mode

    @dbus_property(access=PropertyAccess.READ, name="AgeBand")
    def age_band_property(self) -> DBusStr:
        return self.status.age_band

    @dbus_property(access=PropertyAccess.READ, name="Locked")
    def locked_property(self) -> DBusBool:
        return self.status.locked

    @dbus_property(access=PropertyAccess.READ, name="LockReason")
    def lock_reason_property(self) -> DBusStr:
        return self.status.lock_reason

    @dbus_property(access=PropertyAccess.READ, name="RemainingSeconds")
    def remaining_seconds_property(self) -> DBusInt64:
        return self.status.remaining_seconds

    @dbus_property(access=PropertyAccess.READ, name="NextChange")
    def next_change_property(self) -> DBusInt64:
        return self.status.next_change

    @dbus_signal(name="Warning")
    def warning(self, minutes_left: int, message: str) -> SignatureUS:
        return [minutes_left, message]

    @dbus_signal(name="RestReminder")
    def rest_reminder(self, message: str) -> DBusStr:
        return message

    @dbus_signal(name="TimeUp")
    def time_up(self, reason: str, message: str) -> SignatureSS:
        return [reason, message]

    @dbus_signal(name="RequestAnswered")
    def request_answered(self, request_id: str, approved: bool, minutes: int,
                        message: str) -> SignatureSBUS:
        return [request_id, approved, minutes, message]

    @dbus_signal(name="AppBlocked")
    def app_blocked(self, app_id: str, message: str) -> SignatureSS:
        return [app_id, message]


_PROPERTY_OF = {
    "MinorMode": "minor_mode", "AgeBand": "age_band", "Locked": "locked",
    "LockReason": "lock_reason", "RemainingSeconds": "remaining_seconds",
    "NextChange": "next_change",
}


def status_dict(status: Status) -> dict[str, Variant]:
    """GetStatus's a{sv}: every field of Status under its CamelCase name."""
    sig = {bool: "b", int: "x", str: "s"}
    out: dict[str, Variant] = {}
    for field_name, value in vars(status).items():
        key = "".join(part.capitalize() for part in field_name.split("_"))
        out[key] = Variant(sig[type(value)], value)
    return out


class AgentService:
    """Owns the bus name, authorises and dispatches method calls, emits signals.

    Implements the session enforcer's `Notifier` (warning, rest_reminder, time_up)."""

    def __init__(self, controller: Controller, child_uid: int | Collection[int], *,
                 bus_address: str | None = None, bus_name: str = BUS_NAME) -> None:
        self.controller = controller
        self.child_uids = uid_set(child_uid)
        self.bus_address = bus_address
        self.bus_name = bus_name
        self.interface = Agent1Interface()
        self.objects: dict[str, BusObject] = {
            OBJECT_PATH: BusObject(OBJECT_PATH, INTERFACE, self.interface, METHODS, controller)}
        self.bus: MessageBus | None = None
        self._background = BackgroundTasks(log, "method call")

    async def start(self) -> None:
        self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
        self.bus.add_message_handler(self._on_message)
        for obj in self.objects.values():
            self.bus.export(obj.path, obj.interface)
        self.interface.status = self.controller.get_status()
        reply = await self.bus.request_name(self.bus_name)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise RuntimeError(f"could not own {self.bus_name}: {reply.name}")

    async def stop(self) -> None:
        for task in list(self._background.tasks):
            task.cancel()
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    def export(self, obj: BusObject) -> None:
        """Serve another object (before or after `start`)."""
        self.objects[obj.path] = obj
        if self.bus is not None:
            self.bus.export(obj.path, obj.interface)

    # ------------------------------------------------------------------ state out

    def refresh(self, *_ignored: object) -> None:
        """Re-read the controller's status; emit PropertiesChanged for what changed.
        Has the daemon's subscriber signature, so `agent.subscribe(service.refresh)` works."""
        new = self.controller.get_status()
        old, self.interface.status = self.interface.status, new
        changed = {prop: getattr(new, attr) for prop, attr in _PROPERTY_OF.items()
                   if getattr(new, attr) != getattr(old, attr)}
        if changed and self.bus is not None:
            self.interface.emit_properties_changed(changed)
        for obj in self.objects.values():
            if obj.on_change is not None and self.bus is not None:
                obj.on_change()

    def warning(self, minutes_left: int, message: str) -> None:
        self.interface.warning(minutes_left, message)

    def rest_reminder(self, message: str) -> None:
        self.interface.rest_reminder(message)

    def time_up(self, reason: str, message: str) -> None:
        self.interface.time_up(reason, message)

    def request_answered(self, request_id: str, approved: bool, minutes: int, message: str) -> None:
        self.interface.request_answered(request_id, approved, minutes, message)

    def app_blocked(self, app_id: str, message: str) -> None:
        self.interface.app_blocked(app_id, message)

    # ------------------------------------------------------------------ calls in

    def _on_message(self, msg: Message) -> bool:
        """Take every method call on our objects' interfaces (and interface-less calls of
        their methods)."""
        obj = self.objects.get(msg.path or "")
        if msg.message_type is not MessageType.METHOD_CALL or obj is None:
            return False
        ours = msg.interface == obj.interface_name or (msg.interface is None and msg.member in obj.methods)
        if not ours:
            return False
        self._background.spawn(self._dispatch(msg, obj))
        return True

    async def _dispatch(self, msg: Message, obj: BusObject) -> None:
        bus = self.bus
        if bus is None:
            return
        try:
            uid = await unix_user(bus, msg.sender or "")
        except DBusError as exc:  # the caller left already
            log.info("caller %s vanished before authorisation: %s", msg.sender, exc)
            return
        spec = obj.methods.get(msg.member or "")
        polkit = None
        if (spec is not None and spec.action is not None and not self._allowed(spec.role, uid)
                and uid not in self.child_uids):  # the child: refused, polkit never asked
            polkit = await check_authorization(
                bus, msg.sender or "", spec.action,
                interactive=bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION))
        reply = self._answer(msg, obj, uid, polkit)
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return
        bus.send(reply)

    def _answer(self, msg: Message, obj: BusObject, uid: int,
                polkit: Authorization | None = None) -> Message:
        spec = obj.methods.get(msg.member or "")
        if spec is None:
            return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod",
                                     f"{obj.interface_name} has no method {msg.member!r}")
        if polkit is not None and polkit.authorized:
            log.info("%s from uid %d: authorised by polkit (%s)", spec.name, uid, spec.action)
        elif not self._allowed(spec.role, uid):
            log.warning("refused %s from uid %d%s", spec.name, uid,
                        f" (polkit {spec.action}: {polkit.problem or 'not authorised'})" if polkit else "")
            if polkit is not None and polkit.challenge:
                return Message.new_error(msg, INTERACTIVE_AUTHORIZATION_REQUIRED,
                                         f"{spec.name}: polkit authorises {spec.action} only after "
                                         "authentication: call again allowing interactive authorization")
            why = f" (polkit: {spec.action} not authorised)" if polkit is not None else ""
            return Message.new_error(msg, ACCESS_DENIED,
                                     f"{spec.name}: not allowed for uid {uid}{why}")
        if msg.signature != spec.in_signature:
            return Message.new_error(msg, INVALID_ARGS,
                                     f"{spec.name} takes ({spec.in_signature}), "
                                     f"got ({msg.signature})")
        try:
            body = spec.handler(obj.target, list(msg.body))
        except validate.InvalidArgumentError as exc:
            return Message.new_error(msg, INVALID_ARGS, f"{spec.name}: {exc}")
        except LimitExceededError as exc:
            return Message.new_error(msg, LIMIT_EXCEEDED, f"{spec.name}: {exc}")
        if spec.changes:
            self.refresh()
        return Message.new_method_return(msg, spec.out_signature, body)

    def _allowed(self, role: Role, uid: int) -> bool:
        if role is Role.ADMIN:
            return uid == ROOT_UID
        if role is Role.CHILD:
            return uid in self.child_uids
        return uid in self.child_uids or uid == ROOT_UID
