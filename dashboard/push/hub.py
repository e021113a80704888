"""Topics that waiting connections subscribe to: `device:<id>` (a device's queue changed)
and `family:<id>` (an event for the family's guardians). `publish` may be called from any
thread (request handlers run in a thread pool); waiters live on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def device_topic(device_id: str) -> str:
    return f"device:{device_id}"


def family_topic(family_id: str) -> str:
    return f"family:{family_id}"


class Hub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event | Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.remote: Callable[[list[str]], None] | None = None  # set by the cross-process notifier

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[asyncio.Event]:
        """An event set on every wake-up of these topics (for long-polls)."""
        event = asyncio.Event()
        with self._registered(topics, event):
            yield event

    @contextmanager
    def on_wake(self, topics: list[str], callback: Callable[[], None]) -> Iterator[None]:
        """Call `callback` on the loop at every wake-up of these topics (for sockets: no task
        waits per connection, so an idle socket costs only its own objects)."""
        with self._registered(topics, callback):
            yield

    @contextmanager
    def _registered(
        self, topics: tuple[str, ...] | list[str], waiter: asyncio.Event | Callable[[], None]
    ) -> Iterator[None]:
        with self._lock:
            for topic in topics:
                self._waiters.setdefault(topic, set()).add(waiter)
        try:
            yield
        finally:
            with self._lock:
                for topic in topics:
                    waiters = self._waiters.get(topic)
                    if waiters is not None:
                        waiters.discard(waiter)
                        if not waiters:
                            del self._waiters[topic]

    @property
    def connections(self) -> int:
        with self._lock:
            return len({id(e) for waiters in self._waiters.values() for e in waiters})

    def wake_local(self, topics: list[str]) -> None:
        """Set every waiter of these topics (on the loop's thread)."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake(topics)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, topics)

    def _wake(self, topics: list[str]) -> None:
        with self._lock:
            waiters = {w for t in topics for w in self._waiters.get(t, ())}
        for waiter in waiters:
            if isinstance(waiter, asyncio.Event):
                waiter.set()
            else:
                waiter()

    def publish(self, topics: list[str]) -> None:
        """Wake local waiters and, with several processes, the other processes' waiters.
        Call after the transaction that made the change has committed."""
        self.wake_local(topics)
        if self.remote is not None:
            self.remote(topics)
