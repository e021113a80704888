"""The one wiring module: settings, database, secrets, hasher, hub, notifier and routers
put together into one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from dashboard import retention
from dashboard.api import accounts, device, families, pairing, push, webpush
from dashboard.api.device_socket import DeviceSocketFront
from dashboard.api.http import BodyLimit, SecurityHeaders, install_error_handlers
from dashboard.api.models import Problem
from dashboard.config import Settings
from dashboard.db.engine import Database
from dashboard.push.heartbeat import Heartbeat
from dashboard.push.hub import Hub
from dashboard.push.notify import PgNotifier
from dashboard.secrets import load_or_create
from dashboard.security.passwords import Hasher
from dashboard.state import AppState, wall_clock
from dashboard.webpush.provider import Notifier, NullNotifier
from dashboard.webpush.sender import WebPushNotifier

log = logging.getLogger(__name__)
API_VERSION = "1.0"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
    for code, text in (
        (400, "Bad request"),
        (401, "Not authenticated"),
        (403, "Forbidden"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Body too large"),
        (422, "Invalid input (the field is named)"),
        (429, "Rate limited / back-off"),
        (503, "Busy"),
    )
}


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    notifier: Notifier | None = None,
    clock: Callable[[], int] = wall_clock,
) -> FastAPI:
    database = db or Database(
        settings.database_url, synchronous=settings.sqlite_synchronous, pool_size=settings.pool_size
    )
    hub = Hub()
    secrets = load_or_create(database)
    state = AppState(
        settings=settings,
        db=database,
        secrets=secrets,
        hasher=Hasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.hash_concurrency,
            queue=settings.hash_queue,
        ),
        hub=hub,
        notifier=NullNotifier(),
        heartbeat=Heartbeat(settings.heartbeat),
        clock=clock,
    )
    web_push = notifier is None
    state.notifier = notifier or WebPushNotifier(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        pg = None if database.is_sqlite else PgNotifier(database.url, hub)
        if pg is not None:
            pg.start()
        app.state.pg_notifier = pg
        if web_push and isinstance(state.notifier, WebPushNotifier):
            state.notifier.start()
        sweeper = asyncio.get_running_loop().create_task(retention.sweep_forever(state))
        state.heartbeat.start()
        try:
            yield
        finally:
            await state.heartbeat.stop()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if isinstance(state.notifier, WebPushNotifier):
                await state.notifier.stop()
            if pg is not None:
                await pg.stop()
            if db is None:
                database.dispose()

    app = FastAPI(
        title="minormode dashboard",
        version=API_VERSION,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        description="The guardian dashboard's API (dashboard/API.md).",
    )
    app.state.mm = state
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    for module in (accounts, families, pairing, device, push, webpush):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, hsts=settings.cookie_secure)
    app.add_middleware(DeviceSocketFront)  # outermost: a device socket keeps the shortest stack
    if settings.static_dir is not None and (settings.static_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=settings.static_dir, html=True), name="web")
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error response described as it is sent: RFC 9457
    problem+json (FastAPI's own 422 schema is not what this server answers)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for code, response in op.get("responses", {}).items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = problem
                    response["description"] = ERROR_RESPONSES.get(int(code), {}).get("description", "Error")
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = doc
    return doc
