"""A push socket's deliveries: no wake-up is lost, whenever it arrives. A lost one leaves a
device waiting for its next timed exchange (a minute) with a guardian's grant in its queue."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from fastapi import WebSocketDisconnect

from dashboard.api.push import _serve
from dashboard.push.hub import Hub, device_topic

TOPIC = device_topic("dev-1")


class Socket:
    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def receive_text(self) -> str:
        await self.closed.wait()
        raise WebSocketDisconnect()


async def settle() -> None:
    """Let every ready callback and task step run (no timers: nothing here sleeps)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def served(on_wake: Any) -> tuple[Hub, Socket, asyncio.Task[None]]:
    hub = Hub()
    hub.bind(asyncio.get_running_loop())
    ws = Socket()
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    state: Any = SimpleNamespace(hub=hub, heartbeat=set())
    task = asyncio.create_task(_serve(ws, state, [TOPIC], on_ready, on_wake))  # type: ignore[arg-type]
    await ready.wait()
    return hub, ws, task


async def test_a_wake_up_as_the_last_pass_ends_gets_a_pass_of_its_own() -> None:
    """The unlucky moment: a change commits while the delivery's last send is finishing, so
    its wake-up runs after that pass has looked for more and before the task's done
    callbacks. It must still be delivered."""
    passes: list[int] = []
    loop = asyncio.get_running_loop()

    async def on_wake() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            loop.call_soon(hub.wake_local, [TOPIC])

    hub, ws, task = await served(on_wake)
    hub.wake_local([TOPIC])
    await settle()
    assert passes == [0, 1]
    ws.closed.set()
    await task


async def test_wake_ups_during_a_send_make_one_more_pass_not_one_each() -> None:
    passes: list[int] = []
    gate = asyncio.Event()

    async def on_wake() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            await gate.wait()  # a slow send: three changes commit meanwhile

    hub, ws, task = await served(on_wake)
    hub.wake_local([TOPIC])
    await settle()
    for _ in range(3):
        hub.wake_local([TOPIC])
    gate.set()
    await settle()
    assert passes == [0, 1]  # the second pass re-reads everything the three changed
    hub.wake_local([TOPIC])
    await settle()
    assert passes == [0, 1, 2]  # and a later change gets its own
    ws.closed.set()
    await task
