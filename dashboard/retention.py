"""The retention sweep `serve` runs every `retention_sweep` seconds (and `admin purge` once)."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from dashboard.datarights import purge_expired
from dashboard.state import AppState

log = logging.getLogger(__name__)


def purge_once(state: AppState) -> dict[str, int]:
    with state.db.write() as conn:
        return purge_expired(conn, state.now())


async def sweep_forever(state: AppState) -> None:
    while True:
        await asyncio.sleep(state.settings.retention_sweep)
        purged = await run_in_threadpool(purge_once, state)
        if any(purged.values()):
            log.info("retention purge: %s", purged)
