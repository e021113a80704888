"""Follows the child's sessions through logind and reduces them to one fact: does time count?

Time counts while the device is awake and at least one of the child's sessions is active
(in front on its seat) and the display is lit (`set_display`, from agent.os.display).
Where root cannot see the display, the session's IdleHint and LockedHint stand in for it;
they come from programs running as the child, so the display fact is preferred.

The adapter reports only changes of that boolean through `on_activity(counting)`; it never
reads a clock for decisions (the daemon stamps each change with trusted time). Signals are
accepted only from the current owner of org.freedesktop.login1, so a child sending a forged
PrepareForSleep or PropertiesChanged on the system bus changes nothing. A delay inhibitor
lets usage be committed before sleep.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from agent.bus.background import BackgroundTasks
from agent.bus.calls import add_match, call, get_all
from agent.core.accounts import uid_set

log = logging.getLogger("minormode.logind")

LOGIN1 = "org.freedesktop.login1"
LOGIN1_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
SESSION_PREFIX = "/org/freedesktop/login1/session/"
_WATCHED = frozenset({"Active", "IdleHint", "LockedHint", "State"})


@dataclass(frozen=True)
class SessionState:
    id: str
    path: str
    active: bool = False
    idle: bool = False
    locked: bool = False
    state: str = "online"

    @property
    def counting(self) -> bool:
        return self.active and not self.idle and not self.locked and self.state == "active"


def counting(sessions: dict[str, SessionState], asleep: bool, display: bool | None = None) -> bool:
    """The one rule: awake and some session of the child is in front; and then either the
    display is lit (when root can see it: `display` is not None, and the child-reported
    IdleHint/LockedHint are not trusted), or, without display facts, not idle and not locked."""
    if asleep:
        return False
    if display is not None:
        return display and any(s.active and s.state == "active" for s in sessions.values())
    return any(s.counting for s in sessions.values())


class LogindWatcher:
    """Watches every session of the child uid(s); call `start()`, keep the loop running.
    Several child accounts share one pooled budget: any of their sessions counts."""

    def __init__(self, child_uid: int | Collection[int], on_activity: Callable[[bool], None], *,
                 before_sleep: Callable[[], Awaitable[None]] | None = None,
                 bus_address: str | None = None) -> None:
        self.child_uids = uid_set(child_uid)
        self.on_activity = on_activity
        self.before_sleep = before_sleep
        self.bus_address = bus_address
        self.bus: MessageBus | None = None
        self.sessions: dict[str, SessionState] = {}
        self.asleep = False
        self.display: bool | None = None  # from agent.os.display; None: not known
        self.counting: bool | None = None
        self.listeners: list[Callable[[str], None]] = []  # told "unlocked", "changed", ...
        self._owner: str | None = None
        self._inhibitor: int | None = None
        self._background = BackgroundTasks(log, "logind handler")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        bus_type = BusType.SYSTEM
        self.bus = await MessageBus(bus_address=self.bus_address, bus_type=bus_type,
                                    negotiate_unix_fd=True).connect()
        self.bus.add_message_handler(self._on_message)
        sender = f"sender='{LOGIN1}'"
        await add_match(self.bus, f"type='signal',{sender},interface='{MANAGER}'")
        await add_match(self.bus, f"type='signal',{sender},interface='{PROPERTIES}',"
                                  f"path_namespace='{LOGIN1_PATH}/session'")
        await add_match(self.bus, f"type='signal',{sender},interface='{SESSION}'")
        await add_match(self.bus, "type='signal',sender='org.freedesktop.DBus',"
                                  f"member='NameOwnerChanged',arg0='{LOGIN1}'")
        reply = await call(self.bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "GetNameOwner", "s", [LOGIN1])
        self._owner = reply.body[0]
        await self.rescan()
        await self._take_inhibitor()

    async def stop(self) -> None:
        self._release_inhibitor()
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    # ------------------------------------------------------------------ state

    async def rescan(self) -> None:
        """Read every session of the child afresh (start, resume, logind restarted)."""
        bus = self._bus()
        reply = await call(bus, LOGIN1, LOGIN1_PATH, MANAGER, "ListSessions")
        found: dict[str, SessionState] = {}
        for sid, uid, _name, _seat, path in reply.body[0]:
            if uid in self.child_uids:
                state = await self._read_session(sid, path)
                if state is not None:
                    found[path] = state
        self.sessions = found
        self._update("rescan")

    async def _read_session(self, sid: str, path: str) -> SessionState | None:
        try:
            props = await get_all(self._bus(), LOGIN1, path, SESSION)
        except DBusError as exc:  # the session left between listing and reading
            log.info("session %s gone while reading it: %s", path, exc)
            return None
        return _apply(SessionState(sid, path), props)

    def set_display(self, on: bool | None) -> None:
        """The display watch's callback: the panel went on or off (None: unknown)."""
        self.display = on
        self._update("display")

    def _update(self, why: str) -> None:
        now_counting = counting(self.sessions, self.asleep, self.display)
        if now_counting != self.counting:
            self.counting = now_counting
            log.debug("counting=%s (%s)", now_counting, why)
            self.on_activity(now_counting)
        for listener in self.listeners:
            listener(why)

    @property
    def locked(self) -> bool:
        """Every session of the child is locked (vacuously true with no session)."""
        return all(s.locked for s in self.sessions.values())

    # ------------------------------------------------------------------ actions

    async def lock_session(self, session_id: str) -> None:
        """Ask logind to lock one session (logind tells its screen locker)."""
        await call(self._bus(), LOGIN1, LOGIN1_PATH, MANAGER, "LockSession", "s", [session_id])

    async def lock_sessions(self) -> list[str]:
        """Lock each of the child's sessions; the ids asked."""
        asked = []
        for s in list(self.sessions.values()):
            await self.lock_session(s.id)
            asked.append(s.id)
        return asked

    async def terminate_sessions(self) -> list[str]:
        ended = []
        for s in list(self.sessions.values()):
            await call(self._bus(), LOGIN1, LOGIN1_PATH, MANAGER, "TerminateSession", "s", [s.id])
            ended.append(s.id)
        return ended

    # ------------------------------------------------------------------ signals

    def _on_message(self, msg: Message) -> bool:
        if msg.message_type is not MessageType.SIGNAL:
            return False
        if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
            if msg.body and msg.body[0] == LOGIN1:
                self._owner = msg.body[2] or None
                if self._owner:  # logind restarted: our inhibitor died with the old one
                    self._background.spawn(self._logind_restarted())
            return False
        if self._owner is None or msg.sender != self._owner:
            return False  # not from logind: forged or unrelated
        if msg.interface == MANAGER:
            self._on_manager_signal(msg)
        elif msg.interface == PROPERTIES and msg.member == "PropertiesChanged":
            self._on_properties(msg)
        elif msg.interface == SESSION and msg.member == "Unlock" and msg.path in self.sessions:
            # Someone asked logind to unlock: treat the session as unlocked now, before
            # its locker reports it, so a lock period re-locks at once.
            self.sessions[msg.path] = replace(self.sessions[msg.path], locked=False)
            self._update("unlocked")
        return False

    def _on_manager_signal(self, msg: Message) -> None:
        if msg.member == "PrepareForSleep" and msg.signature == "b":
            self._background.spawn(self._prepare_for_sleep(bool(msg.body[0])))
        elif msg.member == "SessionNew" and msg.signature == "so":
            self._background.spawn(self._session_new(msg.body[0], msg.body[1]))
        elif (msg.member == "SessionRemoved" and msg.signature == "so"
              and self.sessions.pop(msg.body[1], None) is not None):
            self._update("session-removed")

    async def _logind_restarted(self) -> None:
        self._release_inhibitor()
        await self.rescan()
        if not self.asleep:
            await self._take_inhibitor()

    async def _session_new(self, sid: str, path: str) -> None:
        try:
            props = await get_all(self._bus(), LOGIN1, path, SESSION)
        except DBusError as exc:
            log.info("new session %s unreadable: %s", path, exc)
            return
        user = props.get("User")
        if not user or int(user[0]) not in self.child_uids:
            return
        self.sessions[path] = _apply(SessionState(sid, path), props)
        self._update("session-new")

    def _on_properties(self, msg: Message) -> None:
        path = msg.path or ""
        if msg.signature != "sa{sv}as" or msg.body[0] != SESSION or path not in self.sessions:
            return
        changed = {k: v.value for k, v in msg.body[1].items()}
        invalidated = set(msg.body[2]) & _WATCHED
        self.sessions[path] = _apply(self.sessions[path], changed)
        # logind does not signal State changes; re-read it whenever Active moves.
        if invalidated or ("Active" in changed and "State" not in changed):
            state = self.sessions[path]
            self._background.spawn(self._refresh(state.id, path))
        self._update("unlocked" if changed.get("LockedHint") is False else "properties")

    async def _refresh(self, sid: str, path: str) -> None:
        state = await self._read_session(sid, path)
        if state is not None and path in self.sessions:
            self.sessions[path] = state
            self._update("refresh")

    async def _prepare_for_sleep(self, going: bool) -> None:
        if going:
            self.asleep = True
            self._update("sleep")
            try:
                if self.before_sleep is not None:
                    await self.before_sleep()
            finally:
                self._release_inhibitor()
        else:
            self.asleep = False
            await self._take_inhibitor()
            await self.rescan()

    # ------------------------------------------------------------------ the sleep inhibitor

    async def _take_inhibitor(self) -> None:
        if self._inhibitor is not None:
            return
        try:
            reply = await call(self._bus(), LOGIN1, LOGIN1_PATH, MANAGER, "Inhibit", "ssss",
                               ["sleep", "minormode", "save usage before sleep", "delay"])
        except DBusError as exc:
            log.warning("no sleep inhibitor (usage is still committed every few seconds): %s", exc)
            return
        index = reply.body[0]
        fds = reply.unix_fds
        if isinstance(index, int) and 0 <= index < len(fds):
            self._inhibitor = fds[index]
            for i, fd in enumerate(fds):  # close any extra descriptors we were sent
                if i != index:
                    os.close(fd)

    def _release_inhibitor(self) -> None:
        if self._inhibitor is not None:
            os.close(self._inhibitor)
            self._inhibitor = None

    @property
    def inhibiting(self) -> bool:
        return self._inhibitor is not None

    # ------------------------------------------------------------------ plumbing

    def _bus(self) -> MessageBus:
        if self.bus is None:
            raise RuntimeError("LogindWatcher.start() was not called")
        return self.bus



def _apply(state: SessionState, props: dict[str, Any]) -> SessionState:
    return replace(
        state,
        active=bool(props.get("Active", state.active)),
        idle=bool(props.get("IdleHint", state.idle)),
        locked=bool(props.get("LockedHint", state.locked)),
        state=str(props.get("State", state.state)),
    )
