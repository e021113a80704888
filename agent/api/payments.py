"""The spending broker on D-Bus: `org.minormode.Payments1`, the gate every purchase passes.

    Authorize(x amount, s currency, s item, s idempotency_key) -> (s decision, s request_id,
                                                                  s reason)
    Refund(s request_id) -> (s decision, s reason)
    Status(s request_id) -> (s decision, s reason)
    signal Decided(s request_id, s decision)   # a pending purchase was answered or expired

decision is approved | denied | pending (| refunded | expired for Status/Decided).

The caller is identified from the bus's own record of the connection (its pid), then
the process's executable (`agent.api.callers`), never from an argument; only apps in the
policy's `apps.payers` may call, others get org.freedesktop.DBus.Error.AccessDenied. Bad
amounts, currencies or keys get org.freedesktop.DBus.Error.InvalidArgs naming the
problem, and change nothing.

Ordinary dbus-fast handlers do not see the sender, so calls to this interface are taken by
a low-level message handler first; the exported ServiceInterface only provides
introspection and the signal (its method bodies refuse, in case a call ever slips past).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from dbus_fast import BusType, Message, MessageType, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusInt64, DBusSignature, DBusStr
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

from agent.api.callers import CallerIdentifier, exe_of
from agent.core.flood import Admit, own_gates
from agent.core.policy import Policy
from agent.core.spending import SpendingError
from agent.store.events import Event, EventKind, EventSink
from agent.store.filewatch import WriteWatch
from agent.store.ledger import Ledger, LedgerError, Purchase

log = logging.getLogger(__name__)

BUS_NAME = "org.minormode.Payments1"
OBJECT_PATH = "/org/minormode/Payments1"
INTERFACE = "org.minormode.Payments1"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
FAILED = "org.freedesktop.DBus.Error.Failed"
LIMITS_EXCEEDED = "org.freedesktop.DBus.Error.LimitsExceeded"

Triple = Annotated[list[str], DBusSignature("sss")]
Pair = Annotated[list[str], DBusSignature("ss")]

# The longest sleep between looks at the ledger: expiry is scheduled and writes wake the
# broker, so this is only a safety net (a moved clock, an inotify watch that failed).
ANNOUNCE_INTERVAL = 300.0

_SIGNATURES = {"Authorize": "xsss", "Refund": "s", "Status": "s"}


class _Interface(ServiceInterface):
    """Introspection data and the Decided signal; calls are served by PaymentsService."""

    def __init__(self) -> None:
        super().__init__(INTERFACE)

    @dbus_method()
    def Authorize(  # noqa: N802
        self, amount: DBusInt64, currency: DBusStr, item: DBusStr, idempotency_key: DBusStr
    ) -> Triple:
        raise DBusError(ACCESS_DENIED, "caller not identified")

    @dbus_method()
    def Refund(self, request_id: DBusStr) -> Pair:  # noqa: N802
        raise DBusError(ACCESS_DENIED, "caller not identified")

    @dbus_method()
    def Status(self, request_id: DBusStr) -> Pair:  # noqa: N802
        raise DBusError(ACCESS_DENIED, "caller not identified")

    @dbus_signal()
    def Decided(self, request_id: str, decision: str) -> Pair:  # noqa: N802
        return [request_id, decision]


class PaymentsService:
    """Owns the bus name and serves calls. `await start()`, later `await stop()`."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: Callable[[], Policy],
        identifier: CallerIdentifier,
        events: EventSink,
        clock: Callable[[], datetime],
        bus_address: str | None = None,
        announce_interval: float = ANNOUNCE_INTERVAL,
        admit: Admit | None = None,
    ) -> None:
        """`admit(kind, key)`: the daemon's flood gates (agent.store.floodsink), so refusals
        are counted in the journal; gates of its own otherwise."""
        self._ledger = ledger
        self._policy = policy
        self.identifier = identifier  # replaced when the installed apps change
        self._events = events
        self._admit = admit or own_gates(time.monotonic)  # a purchase request is a ledger row: paced per app
        self._clock = clock
        self._address = bus_address
        self._interval = announce_interval
        self._iface = _Interface()
        self._bus: MessageBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._announcer: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._closing = False
        self._watch: WriteWatch | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """Connect, export and own the name; TimeoutError if the bus does not answer."""
        bus = await asyncio.wait_for(
            MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM).connect(), timeout
        )
        bus.add_message_handler(self._on_message)
        bus.export(OBJECT_PATH, self._iface)
        try:
            reply = await asyncio.wait_for(bus.request_name(BUS_NAME), timeout)
        except (TimeoutError, DBusError):
            bus.disconnect()
            raise
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            bus.disconnect()
            raise RuntimeError(f"could not own {BUS_NAME} on the bus: {reply.name}")
        self._bus = bus
        self._watch = self._ledger.watch_writes(self.poke)
        try:
            self._watch.start()
        except OSError as exc:  # then only the safety net's interval sees root's decisions
            log.error("payments: %s; decisions made outside the agent are seen every %g s",
                      exc, self._interval)
            self._watch = None
        self._announcer = asyncio.create_task(self._announce_loop())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._announcer is not None:
            self._closing = True  # a cancel that races the poke's wait_for may be swallowed
            self._poke.set()
            self._announcer.cancel()
            await asyncio.gather(self._announcer, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._bus is not None:
            self._bus.disconnect()
            # A bus that already went away (the private bus stopped first) is fine here.
            with contextlib.suppress(EOFError, ConnectionError):
                await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            self._bus = None

    # -- calls ----------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool:
        if (
            msg.message_type is not MessageType.METHOD_CALL
            or msg.path != OBJECT_PATH
            or msg.interface not in (INTERFACE, None)
            or msg.member not in _SIGNATURES
        ):
            return False
        task = asyncio.get_running_loop().create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _serve(self, msg: Message) -> None:
        try:
            reply = await self._handle(msg)
        except DBusError as exc:
            reply = Message.new_error(msg, exc.type, exc.text)
        except sqlite3.Error as exc:  # the caller gets an answer, never a 25 s timeout
            log.error("payments: ledger failed: %s", exc)
            reply = Message.new_error(msg, FAILED, "the spending ledger is unavailable; try later")
        if self._bus is not None:
            self._bus.send(reply)

    async def _caller(self, msg: Message) -> tuple[str, int]:
        """(app ID, pid) of the sender, or AccessDenied."""
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="GetConnectionCredentials",
                signature="s",
                body=[msg.sender],
            )
        )
        if reply is None or reply.message_type is MessageType.ERROR:
            raise DBusError(ACCESS_DENIED, "the bus did not vouch for the caller")
        creds: dict[str, Any] = reply.body[0]
        if "ProcessID" not in creds or "UnixUserID" not in creds:
            raise DBusError(ACCESS_DENIED, "the bus gave no process ID for the caller")
        pid, uid = int(creds["ProcessID"].value), int(creds["UnixUserID"].value)
        app_id = self.identifier.identify(pid, uid)
        if app_id is None:
            exe = exe_of(pid) or "unknown executable"
            raise DBusError(ACCESS_DENIED, f"caller (pid {pid}, {exe}) is not a known app")
        if app_id not in self._policy().apps.payers:
            raise DBusError(ACCESS_DENIED, f"app {app_id} may not ask for payments")
        return app_id, pid

    async def _handle(self, msg: Message) -> Message:
        member = str(msg.member)
        if msg.signature != _SIGNATURES[member]:
            raise DBusError(
                INVALID_ARGS,
                f"{member} takes ({_SIGNATURES[member]}), got ({msg.signature})",
            )
        app_id, _pid = await self._caller(msg)
        now = self._clock()
        try:
            if member == "Authorize":
                if not self._admit(EventKind.PURCHASE, app_id):
                    raise DBusError(LIMITS_EXCEEDED, f"too many purchase requests from {app_id}; try later")
                amount, currency, item, key = msg.body
                policy = self._policy()
                purchase = await asyncio.to_thread(
                    self._ledger.authorize,
                    caps=policy.spending,
                    tz=ZoneInfo(policy.timezone),
                    app_id=app_id,
                    amount=amount,
                    currency=currency,
                    item=item,
                    idempotency_key=key,
                    now=now,
                )
                self._journal(purchase, now)
                body = [purchase.status.value, purchase.request_id, purchase.reason]
                return Message.new_method_return(msg, "sss", body)
            (request_id,) = msg.body
            if member == "Refund":
                purchase = await asyncio.to_thread(
                    self._ledger.refund, app_id=app_id, request_id=request_id, now=now
                )
                self._journal(purchase, now)
            else:
                found = await asyncio.to_thread(self._ledger.get, request_id)
                if found is None or found.app_id != app_id:
                    raise LedgerError("unknown_request", f"no purchase {request_id!r} by this app")
                purchase = found
            return Message.new_method_return(
                msg, "ss", [purchase.status.value, purchase.reason]
            )
        except (SpendingError, LedgerError) as exc:
            raise DBusError(INVALID_ARGS, f"{exc.code}: {exc}") from exc

    def _journal(self, purchase: Purchase, now: datetime) -> None:
        self._events.record(
            Event(
                EventKind.PURCHASE,
                now,
                {
                    "request_id": purchase.request_id,
                    "app_id": purchase.app_id,
                    "amount": purchase.amount,
                    "currency": purchase.currency,
                    "item": purchase.item,
                    "decision": purchase.status.value,
                    "reason": purchase.reason,
                },
            )
        )

    # -- later decisions ----------------------------------------------------------------

    async def announce_decisions(self) -> list[Purchase]:
        """Expire overdue requests and signal every decision made since the request."""
        now = self._clock()
        await asyncio.to_thread(self._ledger.expire, now)
        decided = await asyncio.to_thread(self._ledger.take_unannounced)
        for purchase in decided:
            self._iface.Decided(purchase.request_id, purchase.status.value)
            self._journal(purchase, now)
        return decided

    def poke(self) -> None:
        """Look for new decisions now (the ledger was written; on the loop's thread)."""
        self._poke.set()

    async def _announce_loop(self) -> None:
        """Announce, then sleep until the first pending request expires, the ledger is
        written (root's CLI decides by writing it: `WriteWatch`), or `announce_interval`
        passes (the safety net: a clock that moved, a watch that could not be set)."""
        while not self._closing:
            self._poke.clear()
            wait = self._interval
            try:
                await self.announce_decisions()
                expiry = await asyncio.to_thread(self._ledger.next_expiry)
                if expiry is not None:
                    wait = min(wait, max(0.0, (expiry - self._clock()).total_seconds()))
            except sqlite3.Error as exc:  # keep serving; the next round retries
                log.error("announcing purchase decisions failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), wait)
