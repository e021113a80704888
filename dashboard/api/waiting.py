"""Long-poll: wait (bounded) until a check finds something, woken by the hub's topics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from dashboard.state import AppState

T = TypeVar("T")


async def wait_for(
    state: AppState, topics: list[str], wait: float, check: Callable[[], T | None]
) -> T | None:
    """Run `check` (in a thread); if it finds nothing, wait for a wake-up on `topics` or
    until `wait` seconds passed, and check again."""
    deadline = time.monotonic() + max(0.0, min(wait, state.settings.long_poll_max))
    with state.hub.subscribe(*topics) as woken:
        while True:
            woken.clear()
            found = await run_in_threadpool(check)
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)
