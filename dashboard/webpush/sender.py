"""The Web Push provider: looks up the accounts' subscriptions and sends each an encrypted
push (RFC 8291) with a VAPID header (RFC 8292), from a background task so that a slow push
service never holds a request. A subscription the push service says is gone (404, 410) is
deleted. Endpoints must be https (plain http only on loopback, for the tests' mock service,
when `webpush_allow_http_loopback` is set): the server never posts to arbitrary URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dashboard.db.schema import webpush_subscriptions
from dashboard.webpush.ece import encrypt, vapid_header
from dashboard.webpush.provider import Notification

log = logging.getLogger(__name__)
QUEUE_LIMIT = 10_000
TTL = 24 * 3600


def endpoint_allowed(endpoint: str, allow_http_loopback: bool) -> bool:
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    if parts.scheme == "https" and parts.hostname:
        return True
    return (
        allow_http_loopback and parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    )


class WebPushNotifier:
    def __init__(self, state: Any) -> None:
        self.state = state
        self._queue: asyncio.Queue[tuple[list[int], Notification]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(QUEUE_LIMIT)
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def notify(self, account_ids: list[int], notification: Notification) -> None:
        if self._loop is None or self._queue is None or self._loop.is_closed():
            return
        queue = self._queue

        def put() -> None:
            if queue.full():
                log.warning("web push queue full: a notification was dropped (the app's feed has it)")
                return
            queue.put_nowait((account_ids, notification))

        self._loop.call_soon_threadsafe(put)

    def _subscriptions(self, account_ids: list[int]) -> list[Any]:
        with self.state.db.read() as conn:
            return list(
                conn.execute(
                    select(webpush_subscriptions).where(webpush_subscriptions.c.account_id.in_(account_ids))
                ).all()
            )

    def _forget(self, sub_id: int) -> None:
        with self.state.db.write() as conn:
            conn.execute(webpush_subscriptions.delete().where(webpush_subscriptions.c.id == sub_id))

    async def _run(self) -> None:
        assert self._queue is not None
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
            while True:
                account_ids, note = await self._queue.get()
                for sub in await run_in_threadpool(self._subscriptions, account_ids):
                    await self._send(client, sub, note)

    async def _send(self, client: httpx.AsyncClient, sub: Any, note: Notification) -> None:
        settings = self.state.settings
        if not endpoint_allowed(sub.endpoint, settings.webpush_allow_http_loopback):
            return
        payload = json.dumps(
            {"type": note.kind, "family": note.family, "device": note.device} | note.data,
            separators=(",", ":"),
        ).encode()
        body = encrypt(payload, bytes(sub.p256dh), bytes(sub.auth))
        headers = {
            "TTL": str(TTL),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": "high",
            "Authorization": vapid_header(
                self.state.secrets.vapid_key, sub.endpoint, settings.webpush_subject, self.state.now()
            ),
        }
        try:
            response = await client.post(sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning("web push to %s failed: %s", urlsplit(sub.endpoint).hostname, exc)
            return
        if response.status_code in (404, 410):
            await run_in_threadpool(self._forget, sub.id)
        elif response.status_code >= 300:
            self.failed += 1
            log.warning("web push to %s answered %s", urlsplit(sub.endpoint).hostname, response.status_code)
        else:
            self.sent += 1
