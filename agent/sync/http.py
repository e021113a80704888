"""The dashboard's device API (dashboard/API.md) over HTTP and WebSocket, nothing more.

One `DashboardClient` per dashboard origin, on aiohttp (one library for HTTP and the push
socket, asyncio-native, in Debian). TLS certificates are verified, against the system's
store or the CA file the device settings name; plain HTTP is accepted only for a loopback
origin (development and the demo). Every non-2xx answer becomes a `ProblemError` carrying the
server's RFC 9457 fields, and every network failure an `UnreachableError`, so the sync loop
decides on two kinds of failure and never on an aiohttp type.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from agent.sync.origin import origin_of

if TYPE_CHECKING:
    import aiohttp

TOTAL_S, CONNECT_S = 30, 10  # a dead link is noticed in well under a minute
MAX_ANSWER = 16 << 20

# aiohttp is imported on first use, in a thread of its own: the import costs ~0.4 s on the
# host and ~8 s on an emulated Cortex-A72 (its connector builds an SSL context and loads the
# system's CAs), which would delay the agent's READY (and its return after a crash, the
# child's session locked meanwhile) and stall the asyncio loop that answers logind and D-Bus.
# A device without a dashboard never imports it.
_import_guard = threading.Lock()
_importing: Future[ModuleType] | None = None


def _start_import() -> Future[ModuleType]:
    global _importing  # noqa: PLW0603 -- one import per process, whichever loop asks
    with _import_guard:
        if _importing is None:
            done: Future[ModuleType] = Future()

            def work() -> None:
                try:
                    done.set_result(importlib.import_module("aiohttp"))
                except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting caller
                    done.set_exception(exc)

            threading.Thread(target=work, name="import-aiohttp", daemon=True).start()
            _importing = done
        return _importing


async def _loaded() -> None:
    """Returns once aiohttp is imported (after that, `import aiohttp` is a dict lookup)."""
    await asyncio.wrap_future(_start_import())


class SyncError(Exception):
    """Talking to the dashboard failed (a `ProblemError` or an `UnreachableError`)."""


@dataclass
class ProblemError(SyncError):
    """The server answered with an error (RFC 9457 problem details)."""

    status: int
    slug: str
    detail: str
    where: str = ""  # the problem's `field`: the request part at fault
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        at = f" ({self.where})" if self.where else ""
        return f"{self.status} {self.slug}: {self.detail}{at}"

    @property
    def permanent(self) -> bool:
        """A refusal that asking again at once will not change (a 4xx other than expired
        credentials, a timeout or "too many"): the request itself is at fault."""
        return 400 <= self.status < 500 and self.status not in (401, 408, 425, 429)

    @property
    def retry_after(self) -> float | None:
        value = self.extra.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class UnreachableError(SyncError):
    """The server could not be reached, or the connection failed midway."""


class DashboardClient:
    def __init__(self, url: str, *, ca_file: Path | None = None) -> None:
        self.origin = origin_of(url)
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._ssl: ssl.SSLContext | bool = context if self.origin.startswith("https") else False
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        import aiohttp  # noqa: PLC0415 -- loaded by _loaded() before any caller gets here

        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=TOTAL_S, connect=CONNECT_S)
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._session

    async def call(self, method: str, path: str, *, bearer: str | None = None, body: Any = None,
                   params: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """One API call; the decoded JSON answer (None for 204)."""
        await _loaded()
        import aiohttp  # noqa: PLC0415 -- see _loaded

        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        # Never `timeout=None`: to aiohttp that means no timeout at all, not the default.
        per_call = aiohttp.ClientTimeout(total=TOTAL_S if timeout is None else timeout, connect=CONNECT_S)
        try:
            async with self._http().request(method, self.origin + "/api/v1" + path, headers=headers,
                                            data=data, params=params, ssl=self._ssl,
                                            timeout=per_call) as answer:
                raw = await answer.content.read(MAX_ANSWER + 1)
                if len(raw) > MAX_ANSWER:
                    raise UnreachableError(f"{method} {path}: answer over {MAX_ANSWER} bytes")
                if answer.status == 204:
                    return None
                value = json.loads(raw) if raw else None
                if answer.status >= 400:
                    raise _problem(answer.status, value, answer.headers.get("Retry-After"))
                return value
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise UnreachableError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise UnreachableError(f"{method} {path}: the answer is not JSON ({exc})") from exc

    async def push(self, token: str, heartbeat: float = 25.0) -> AsyncIterator[dict[str, Any]]:
        """The device push socket: yields each message after the hello (a wake or a ping).
        Ends (raising UnreachableError) when the connection drops or goes quiet for two
        heartbeats, which is how a dead connection is noticed."""
        await _loaded()
        import aiohttp  # noqa: PLC0415 -- see _loaded

        url = self.origin.replace("http", "ws", 1) + "/api/v1/device/push"
        try:
            timeout = aiohttp.ClientWSTimeout(ws_receive=2 * heartbeat + 5, ws_close=10)
            connect = self._http().ws_connect(url, ssl=self._ssl, heartbeat=heartbeat, timeout=timeout)
            async with connect as ws:
                await ws.send_str(json.dumps({"token": token}))
                while True:
                    msg = await ws.receive()
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        raise UnreachableError(f"push socket closed ({msg.type.name}, {ws.close_code})")
                    value = json.loads(msg.data)
                    if isinstance(value, dict):
                        yield value
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError, ValueError) as exc:
            raise UnreachableError(f"push socket: {type(exc).__name__}: {exc}") from exc


def _problem(status: int, value: Any, retry_after: str | None) -> ProblemError:
    body = value if isinstance(value, dict) else {}
    slug = str(body.get("type", "")).rsplit(":", 1)[-1] or "error"
    extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "field")}
    if retry_after is not None and retry_after.isdigit():
        extra.setdefault("retry_after", int(retry_after))
    detail = str(body.get("detail", body.get("title", "")))
    return ProblemError(status, slug, detail, str(body.get("field") or ""), extra)
