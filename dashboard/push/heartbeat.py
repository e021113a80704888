"""One heartbeat for every open socket: every `interval` seconds each socket gets
`{"type": "ping"}`, so a client notices a dead connection and proxies keep idle ones open.
One task for all sockets instead of a timer per socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)
PING = '{"type":"ping"}'


class Heartbeat:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._sockets: set[Any] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, ws: Any) -> None:
        self._sockets.add(ws)

    def discard(self, ws: Any) -> None:
        self._sockets.discard(ws)

    def __len__(self) -> int:
        return len(self._sockets)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            sockets = list(self._sockets)
            for start in range(0, len(sockets), 500):  # in slices: other work runs between them
                results = await asyncio.gather(
                    *(ws.send_text(PING) for ws in sockets[start : start + 500]), return_exceptions=True
                )
                for ws, result in zip(sockets[start : start + 500], results, strict=True):
                    if isinstance(result, BaseException):
                        self._sockets.discard(ws)  # its handler sees the disconnect and ends
