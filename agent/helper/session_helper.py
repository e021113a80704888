"""minormode-session-helper: shows the agent's notices as desktop notifications.

Root cannot talk to the child's session bus, so this small unprivileged program runs in the
child's session (a systemd user unit). It listens to org.minormode.Agent1's signals on the
system bus (only from the name's real owner), turns them into org.freedesktop.Notifications
calls on the session bus, and turns the notification actions "ask for more time" and
"get help / report" into RequestMoreTime and Report calls. It holds no policy and no
secrets: the agent decides everything and checks the caller's uid itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import segno
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from agent.bus.background import BackgroundTasks
from agent.bus.calls import add_match, call
from agent.locale import messages
from agent.locale.messages import Key

log = logging.getLogger("minormode.helper")

AGENT = "org.minormode.Agent1"
AGENT_PATH = "/org/minormode/Agent1"
NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
APP_NAME = "minormode"
ICON = "appointment-soon"
GUARDIAN = "org.minormode.Guardian1"
GUARDIAN_PATH = "/org/minormode/Guardian1"
ACTION_MORE_TIME = "more-time"
ACTION_REPORT = "report"
ACTION_SAME = "pairing-same"
ACTION_DIFFERENT = "pairing-different"
URGENCY_NORMAL, URGENCY_CRITICAL = 1, 2


class SessionHelper:
    def __init__(self, *, system_address: str | None = None, session_address: str | None = None,
                 request_minutes: int = 15) -> None:
        self.system_address = system_address
        self.session_address = session_address
        self.request_minutes = request_minutes
        self.system: MessageBus | None = None
        self.session: MessageBus | None = None
        self.language = messages.DEFAULT_LANGUAGE
        self.agent_owner: str | None = None
        self.notifier_owner: str | None = None
        self.ours: set[int] = set()  # ids of notifications we showed with actions
        self.warning_id = 0  # a new warning replaces the previous one
        self.pairing_id = 0  # the pairing notice, replaced as pairing goes on
        self._background = BackgroundTasks(log, "helper task")

    async def start(self) -> None:
        self.system = await MessageBus(bus_address=self.system_address,
                                       bus_type=BusType.SYSTEM).connect()
        self.session = await MessageBus(bus_address=self.session_address,
                                        bus_type=BusType.SESSION).connect()
        self.system.add_message_handler(self._on_system)
        self.session.add_message_handler(self._on_session)
        await add_match(self.system, f"type='signal',sender='{AGENT}',interface='{AGENT}'")
        await add_match(self.system, f"type='signal',sender='{AGENT}',interface='{GUARDIAN}'")
        await add_match(self.system, "type='signal',sender='org.freedesktop.DBus',"
                                     f"member='NameOwnerChanged',arg0='{AGENT}'")
        await add_match(self.session, f"type='signal',sender='{NOTIFICATIONS}',"
                                      f"interface='{NOTIFICATIONS}'")
        self.agent_owner = await _owner(self.system, AGENT)
        self.notifier_owner = await _owner(self.session, NOTIFICATIONS)
        await self.show_current_lock()

    async def stop(self) -> None:
        for bus in (self.system, self.session):
            if bus is not None:
                bus.disconnect()
        self.system = self.session = None

    async def refresh_language(self) -> dict[str, Any]:
        """Read the agent's status (for the child's language); {} if the agent is away."""
        if self.system is None or self.agent_owner is None:
            return {}
        try:
            reply = await call(self.system, AGENT, AGENT_PATH, AGENT, "GetStatus")
        except DBusError as exc:
            log.warning("agent status unavailable: %s", exc)
            return {}
        status = {k: v.value for k, v in reply.body[0].items()}
        lang = status.get("Language")
        if isinstance(lang, str) and lang in messages.LANGUAGES:
            self.language = lang
        return status

    async def show_current_lock(self) -> None:
        """At login or after a helper restart: if the device is locked, say so now."""
        status = await self.refresh_language()
        if status.get("Locked") is True:
            await self.handle("TimeUp", "ss", [str(status.get("LockReason", "")),
                                               str(status.get("LockMessage", ""))])

    # ------------------------------------------------------------------ agent signals

    def _on_system(self, msg: Message) -> bool:
        if msg.message_type is not MessageType.SIGNAL:
            return False
        if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
            if msg.body and msg.body[0] == AGENT:
                self.agent_owner = msg.body[2] or None
                if self.agent_owner:
                    self._background.spawn(self.show_current_lock())
            return False
        if msg.interface not in (AGENT, GUARDIAN) or msg.sender is None or msg.sender != self.agent_owner:
            return False
        if msg.interface == GUARDIAN:
            if msg.member == "PairingChanged" and msg.signature == "ss":
                self._background.spawn(self.show_pairing(str(msg.body[0]), str(msg.body[1])))
            return False
        self._background.spawn(self.handle(msg.member or "", msg.signature, list(msg.body)))
        return False

    async def show_pairing(self, state: str, sas: str) -> None:
        """Pairing through the dashboard, on the child's screen: the code (and the QR code
        as the notification's image), then the SAS to compare with the guardian's phone."""
        if self.system is None:
            return
        try:
            reply = await call(self.system, AGENT, GUARDIAN_PATH, GUARDIAN, "GetTrust")
        except DBusError as exc:
            log.warning("pairing state unavailable: %s", exc)
            return
        trust = {k: v.value for k, v in reply.body[0].items()}
        title = self._text(Key.PAIRING_TITLE)
        if trust.get("Paired"):
            self.pairing_id = await self.notify(title, self._text(Key.PAIRED), replaces=self.pairing_id)
        elif sas:
            shown = f"{sas[:3]} {sas[3:]}"
            self.pairing_id = await self.notify(
                title, messages.message(Key.PAIRING_SAS, self.language, sas=shown), urgency=URGENCY_CRITICAL,
                replaces=self.pairing_id, actions=[ACTION_SAME, self._text(Key.PAIRING_SAME),
                                                   ACTION_DIFFERENT, self._text(Key.PAIRING_DIFFERENT)])
        elif trust.get("Code"):
            code = str(trust["Code"])
            self.pairing_id = await self.notify(
                title, messages.message(Key.PAIRING_CODE, self.language, code=f"{code[:4]} {code[4:]}"),
                replaces=self.pairing_id, image=qr_image(str(trust.get("QrUrl", ""))))

    async def handle(self, member: str, signature: str, body: list[Any]) -> None:
        """One agent signal -> one notification."""
        t = self._text
        if member == "Warning" and signature == "us":
            self.warning_id = await self.notify(t(Key.WARNING_TITLE), body[1],
                                                replaces=self.warning_id,
                                                actions=[ACTION_MORE_TIME, t(Key.ASK_MORE_TIME)])
        elif member == "TimeUp" and signature == "ss":
            await self.refresh_language()
            await self.notify(self._text(Key.TIME_UP_TITLE), body[1], urgency=URGENCY_CRITICAL,
                              timeout=0, replaces=self.warning_id,
                              actions=[ACTION_MORE_TIME, self._text(Key.ASK_MORE_TIME),
                                       ACTION_REPORT, self._text(Key.REPORT_ACTION)])
        elif member == "RestReminder" and signature == "s":
            await self.notify(self._text(Key.NOTICE_TITLE), body[0])
        elif member == "RequestAnswered" and signature == "sbus":
            await self.notify(self._text(Key.NOTICE_TITLE), body[3])
        elif member == "AppBlocked" and signature == "ss":
            await self.notify(t(Key.APP_BLOCKED_TITLE), body[1],
                              actions=[ACTION_REPORT, t(Key.REPORT_ACTION)])

    def _text(self, key: Key) -> str:
        return messages.message(key, self.language)

    # ------------------------------------------------------------------ notifications

    async def notify(self, summary: str, body: str, *, actions: Sequence[str] = (),
                     urgency: int = URGENCY_NORMAL, timeout: int = -1, replaces: int = 0,
                     image: str = "") -> int:
        if self.session is None:
            raise RuntimeError("SessionHelper.start() was not called")
        hints = {"urgency": Variant("y", urgency), "desktop-entry": Variant("s", APP_NAME)}
        if image:
            hints["image-path"] = Variant("s", image)
        try:
            reply = await call(self.session, NOTIFICATIONS, NOTIFICATIONS_PATH, NOTIFICATIONS,
                               "Notify", "susssasa{sv}i",
                               [APP_NAME, replaces, ICON, summary, body, list(actions), hints,
                                timeout])
        except DBusError as exc:
            log.error("notification not shown: %s", exc)
            return 0
        nid = int(reply.body[0])
        if actions:
            self.ours.add(nid)
        return nid

    def _on_session(self, msg: Message) -> bool:
        if msg.message_type is not MessageType.SIGNAL or msg.interface != NOTIFICATIONS:
            return False
        if msg.sender is None or msg.sender != self.notifier_owner:
            return False
        if msg.member == "ActionInvoked" and msg.signature == "us" and msg.body[0] in self.ours:
            self._background.spawn(self.act(str(msg.body[1])))
        elif msg.member == "NotificationClosed" and msg.signature == "uu":
            self.ours.discard(msg.body[0])
        return False

    async def act(self, action: str) -> None:
        """The child chose an action on one of our notifications."""
        if self.system is None:
            return
        try:
            if action == ACTION_MORE_TIME:
                await call(self.system, AGENT, AGENT_PATH, AGENT, "RequestMoreTime", "us",
                           [self.request_minutes, ""])
                await self.notify(self._text(Key.NOTICE_TITLE), self._text(Key.REQUEST_SENT))
            elif action == ACTION_REPORT:
                await call(self.system, AGENT, AGENT_PATH, AGENT, "Report", "ss", ["help", ""])
                await self.notify(self._text(Key.NOTICE_TITLE), self._text(Key.REPORT_SENT))
            elif action in (ACTION_SAME, ACTION_DIFFERENT):
                await call(self.system, AGENT, GUARDIAN_PATH, GUARDIAN, "ConfirmPairing", "b",
                           [action == ACTION_SAME])
        except DBusError as exc:
            log.error("%s failed: %s", action, exc)
            await self.notify(self._text(Key.NOTICE_TITLE), exc.text)



def qr_image(url: str) -> str:
    """The pairing link as a QR code image in the user's runtime directory (a full QR,
    never Micro QR); "" when there is nowhere to put it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not url or not runtime:
        return ""
    path = Path(runtime) / "minormode-pairing-qr.png"
    segno.make_qr(url).save(str(path), scale=8, border=4)
    return str(path)


async def _owner(bus: MessageBus, name: str) -> str | None:
    try:
        reply = await call(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "GetNameOwner", "s", [name])
    except DBusError:
        return None  # not running yet: NameOwnerChanged will tell us
    owner = reply.body[0]
    return owner if isinstance(owner, str) else None


async def _run(helper: SessionHelper) -> None:
    await helper.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await helper.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="minormode-session-helper", description=__doc__)
    p.add_argument("--request-minutes", type=int, default=15,
                   help="minutes asked for by the 'ask for more time' action (1-240)")
    p.add_argument("--system-bus", help="system bus address (default: the system bus)")
    p.add_argument("--session-bus", help="session bus address (default: $DBUS_SESSION_BUS_ADDRESS)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not 1 <= args.request_minutes <= 240:
        p.error(f"--request-minutes {args.request_minutes}: must be 1..240")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    helper = SessionHelper(system_address=args.system_bus, session_address=args.session_bus,
                           request_minutes=args.request_minutes)
    asyncio.run(_run(helper))
    return 0


if __name__ == "__main__":
    sys.exit(main())
