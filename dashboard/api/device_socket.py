"""The device push socket (`/api/v1/device/push`, API.md "Push") served from the ASGI
messages themselves, in front of the framework.

Why: a WebSocket lives for hours, and everything on its call stack lives with it. Through
FastAPI's routing each idle socket kept ~28 coroutine frames (the middleware chain, the
exception handlers, the router, the dependency solver's three `AsyncExitStack`s) and a
Starlette `WebSocket` — about 20 KiB of Python objects a socket, the larger part of an idle
socket's cost (tests/bench/RESULTS.md). Here a socket is this middleware's frame, the
protocol of `push.py` and a two-slot adapter. It is the outermost user middleware, so it
also skips `BodyLimit` and `SecurityHeaders` (which do nothing for WebSockets). The guardian
socket, a few per family, stays on the router.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from dashboard.api.push import DEVICE_PUSH_PATH, device_socket


class RawSocket:
    """What `push.py` uses of a Starlette `WebSocket`, over the bare ASGI callables."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def accept(self) -> None:
        message = await self._receive()
        if message["type"] != "websocket.connect":
            raise WebSocketDisconnect(1006)
        await self._send({"type": "websocket.accept"})

    async def receive_text(self) -> str:
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text: str = message["text"]  # a binary frame: KeyError, as Starlette's
        return text

    async def send_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


class DeviceSocketFront:
    """ASGI middleware: the device push socket here, everything else to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == DEVICE_PUSH_PATH:
            state: Any = scope["app"].state.mm  # Starlette puts the application in the scope
            await device_socket(RawSocket(receive, send), state)
            return
        await self.app(scope, receive, send)
