"""LISTEN/NOTIFY between server processes on one PostgreSQL.

Each process keeps two direct connections (not from the pool, which a long LISTEN would
pin): one listens on the `minormode_wake` channel on the event loop, one sends from the
request threads. NOTIFY is sent outside every data transaction, after the commit, and only
for what a person waits for (policies, decisions, keyring entries, requests, acks): never
for journal uploads, whose volume would otherwise serialise on the notification queue.
A notification carries topics only, never content; a lost one delays a wake-up until the
next reconnect or long-poll, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING

from dashboard.push.hub import Hub

if TYPE_CHECKING:  # imported when a notifier starts: a SQLite server never loads psycopg (~10 MiB)
    import psycopg

CHANNEL = "minormode_wake"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes
log = logging.getLogger(__name__)


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class PgNotifier:
    def __init__(self, url: str, hub: Hub) -> None:
        self.url = libpq_url(url)
        self.hub = hub
        self.instance = os.urandom(6).hex()
        self._send_lock = threading.Lock()
        self._send_conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self.hub.remote = self.send
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        self.hub.remote = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with self._send_lock:
            if self._send_conn is not None:
                self._send_conn.close()
                self._send_conn = None

    def send(self, topics: list[str]) -> None:
        import psycopg  # noqa: PLC0415 - ~10 MiB that a SQLite server never needs

        payload = f"{self.instance} {' '.join(topics)}"
        if len(payload) > MAX_PAYLOAD:
            payload = payload[:MAX_PAYLOAD].rsplit(" ", 1)[0]
        with self._send_lock:
            for attempt in (1, 2):
                try:
                    if self._send_conn is None or self._send_conn.closed:
                        self._send_conn = psycopg.connect(self.url, autocommit=True)
                    self._send_conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    return
                except psycopg.OperationalError as exc:
                    self._send_conn = None
                    if attempt == 2:
                        log.warning("NOTIFY failed (%s); other processes wake at their next poll", exc)

    async def _listen(self) -> None:
        import psycopg  # noqa: PLC0415 - ~10 MiB that a SQLite server never needs

        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 0.2
                    async for note in conn.notifies():
                        instance, _, rest = note.payload.partition(" ")
                        if instance != self.instance and rest:
                            self.hub.wake_local(rest.split(" "))
            except psycopg.OperationalError as exc:
                self.listening.clear()
                log.warning("LISTEN connection lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
