"""Relays in front of the real dashboard on loopback, for what the network does to a
device: an HTTP-only proxy (no WebSockets, as some carrier or school proxies)."""

from __future__ import annotations

from typing import Any

import httpx

from support.loopback import LoopbackServer, read_body


class HttpOnlyRelay(LoopbackServer):
    """Forwards every HTTP request (long-polls included) and refuses WebSocket upgrades."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused_sockets = 0
        self.client = httpx.AsyncClient(timeout=60)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "websocket":
                self.refused_sockets += 1
                await send({"type": "websocket.close", "code": 1008})
                return
            assert scope["type"] == "http"
            body = await read_body(receive)
            headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in (b"host", b"content-length")}
            query = scope["query_string"].decode()
            url = self.upstream + scope["path"] + (f"?{query}" if query else "")
            r = await self.client.request(scope["method"], url, content=body, headers=headers)
            await send({"type": "http.response.start", "status": r.status_code,
                        "headers": [(k.encode(), v.encode()) for k, v in r.headers.items()
                                    if k.lower() in ("content-type", "retry-after")]})
            await send({"type": "http.response.body", "body": r.content})

        super().__init__(app)
