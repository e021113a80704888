"""Push: a WebSocket per connected device and per open guardian app, and the guardian's
long-poll of the event feed. A push is only a wake-up hint: the device re-reads its queue
on every wake-up and every reconnect, the app re-reads the feed after its last event id.

Device socket `/api/v1/device/push`: the client's first message is `{"token": "<device
token>"}` (never in the URL, which proxies log); the server answers `{"type": "hello",
"device": ...}`, then `{"type": "wake"}` whenever the queue may have changed and
`{"type": "ping"}` every `heartbeat` seconds; the client may send `{"type": "ping"}` and gets
`{"type": "pong"}`. Guardian socket `/api/v1/push`: the session cookie, then a first message
`{"csrf": "<token>", "after": <last event id or 0>}`; the server sends `{"type": "event",
"event": {...}}` for every new event of the account's families, and pings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dashboard.api import models as m
from dashboard.api.deps import SESSION_COOKIE, GuardianDep, State, device_from_token, load_session
from dashboard.api.waiting import wait_for
from dashboard.db.schema import events, memberships
from dashboard.jsoncol import from_json
from dashboard.push.hub import device_topic, family_topic
from dashboard.security import tokens
from dashboard.state import AppState

router = APIRouter(prefix="/api/v1", tags=["push"])
log = logging.getLogger(__name__)
FIRST_MESSAGE_TIMEOUT = 10.0
MAX_CLIENT_MESSAGE = 4096
EVENT_PAGE = 200


async def _first(ws: WebSocket) -> dict[str, Any] | None:
    try:
        text = await asyncio.wait_for(ws.receive_text(), FIRST_MESSAGE_TIMEOUT)
    except (TimeoutError, WebSocketDisconnect, KeyError):
        return None
    if len(text) > MAX_CLIENT_MESSAGE:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _serve(ws: WebSocket, state: AppState, topics: list[str], on_ready: Any, on_wake: Any) -> None:
    """Subscribe first, then greet (`on_ready`): a change made right after the greeting
    always wakes this socket. Then read the client (pings) until it goes away. Nothing
    waits per connection but this read: wake-ups arrive as hub callbacks and the heartbeat
    is one task for every socket (`Heartbeat`), so 10,000 idle sockets stay small."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    # [a delivery is running, a wake-up came during it]; both change only on the loop's thread
    busy, again = [False], [False]

    async def deliver() -> None:
        try:
            while True:  # a wake-up during a send makes one more pass (it may have missed that change)
                again[0] = False
                await on_wake()
                if not again[0]:
                    return
        finally:
            # cleared in the task's last step, not in a done callback: a wake-up that runs
            # between the two would see a delivery "running" that has already made its last
            # pass, and be lost (the device then waited for its next timed exchange)
            busy[0] = False

    def woken() -> None:
        if busy[0]:
            again[0] = True
            return
        busy[0] = True
        task = loop.create_task(deliver())
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        with state.hub.on_wake(topics, woken):
            await on_ready()
            state.heartbeat.add(ws)
            try:
                while True:
                    text = await ws.receive_text()
                    if len(text) <= MAX_CLIENT_MESSAGE and '"ping"' in text:
                        await ws.send_text('{"type":"pong"}')
            finally:
                state.heartbeat.discard(ws)
    except (WebSocketDisconnect, RuntimeError, KeyError):
        pass
    finally:
        for task in pending:
            task.cancel()


DEVICE_PUSH_PATH = "/api/v1/device/push"  # served by api/device_socket.py, in front of the router


async def device_socket(ws: Any, state: AppState) -> None:
    """The device socket's protocol over `ws` (a Starlette `WebSocket` or the leaner
    `device_socket.RawSocket`: `accept`, `receive_text`, `send_text`, `close`)."""
    await ws.accept()
    first = await _first(ws)
    dev = None
    if first is not None and isinstance(first.get("token"), str) and len(first["token"]) < 200:
        dev = await run_in_threadpool(device_from_token, state, first["token"])
    if dev is None:
        await ws.close(code=4401, reason="bad token")
        return
    device_id = dev.id
    del dev  # keep no database row alive for as long as the socket is open
    hello_text = json.dumps({"type": "hello", "device": device_id})

    async def hello() -> None:
        await ws.send_text(hello_text)

    async def wake() -> None:
        await ws.send_text('{"type":"wake"}')

    await _serve(ws, state, [device_topic(device_id)], hello, wake)


def _family_ids(state: AppState, account_id: int) -> list[str]:
    with state.db.read() as conn:
        return [
            r.family_id
            for r in conn.execute(
                select(memberships.c.family_id).where(memberships.c.account_id == account_id)
            ).all()
        ]


def _events_after(state: AppState, account_id: int, after: int) -> list[dict[str, Any]]:
    fams = _family_ids(state, account_id)
    if not fams:
        return []
    with state.db.read() as conn:
        rows = conn.execute(
            select(events)
            .where(events.c.family_id.in_(fams), events.c.id > after)
            .order_by(events.c.id)
            .limit(EVENT_PAGE)
        ).all()
    return [
        {
            "id": r.id,
            "family": r.family_id,
            "device": r.device_id,
            "kind": r.kind,
            "data": from_json(r.data),
            "at": r.at,
        }
        for r in rows
    ]


@router.websocket("/push")
async def guardian_push(ws: WebSocket) -> None:
    state: AppState = ws.app.state.mm
    await ws.accept()
    found = await run_in_threadpool(_session_of, state, ws.cookies.get(SESSION_COOKIE))
    first = await _first(ws)
    csrf = first.get("csrf") if first is not None else None
    want = tokens.csrf_token(state.secrets.token_key, ws.cookies.get(SESSION_COOKIE, ""))
    if found is None or not isinstance(csrf, str) or not tokens.same(csrf.encode(), want.encode()):
        await ws.close(code=4401, reason="no session or wrong csrf")
        return
    account_id = found[1].id
    after = first.get("after", 0) if first is not None else 0
    cursor = after if isinstance(after, int) and not isinstance(after, bool) and after >= 0 else 0
    kid = found[1].kid

    async def send_new() -> None:
        nonlocal cursor
        for event in await run_in_threadpool(_events_after, state, account_id, cursor):
            cursor = event["id"]
            await ws.send_text(json.dumps({"type": "event", "event": event}))

    async def hello() -> None:
        await ws.send_text(json.dumps({"type": "hello", "kid": kid}))
        await send_new()

    topics = [family_topic(f) for f in await run_in_threadpool(_family_ids, state, account_id)]
    await _serve(ws, state, topics, hello, send_new)


def _session_of(state: AppState, cookie: str | None) -> Any:
    with state.db.read() as conn:
        return load_session(state, conn, cookie)


@router.get("/events", response_model=m.Events)
async def poll_events(
    who: GuardianDep,
    state: State,
    after: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    wait: Annotated[float, Query(ge=0, le=30)] = 0,
) -> dict[str, Any]:
    """The event feed of your families after event `after` (the long-poll fallback)."""
    topics = [family_topic(f) for f in await run_in_threadpool(_family_ids, state, who.account_id)]

    def check() -> list[dict[str, Any]] | None:
        return _events_after(state, who.account_id, after) or None

    found = await wait_for(state, topics, wait, check)
    items = found or []
    return {"events": items, "next_after": items[-1]["id"] if items else after}
