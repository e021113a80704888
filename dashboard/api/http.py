"""HTTP plumbing: problem+json error handlers, bounded request bodies, security headers."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.errors import PROBLEM_BASE, TITLES, Problem

PROBLEM_JSON = "application/problem+json"
KIB = 1024
MIB = 1024 * KIB
DEFAULT_BODY_LIMIT = 64 * KIB
# (path prefix, limit): the first that matches. Sizes follow PROTOCOL.md's bounds.
BODY_LIMITS: tuple[tuple[str, int], ...] = (
    ("/api/v1/device/journal", 8 * MIB),  # 2,000 records
    ("/api/v1/device/summaries", 2 * MIB),  # a sealed summary: up to 1 MiB of plaintext
    ("/api/v1/device/catalogue", 2 * MIB),
    ("/api/v1/device/pairing", 1 * MIB),
    ("/api/v1/device/", 1 * MIB),
    ("/api/v1/pairing/", 8 * MIB),  # complete: the keyring and up to 16 sealed messages
    ("/api/v1/families/", 2 * MIB),  # sealed policies, keyring entries
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; media-src 'self' blob:; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def body_limit(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), DEFAULT_BODY_LIMIT)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    headers = {}
    if problem.retry_after:
        headers["Retry-After"] = str(problem.retry_after)
    body = problem.to_json(None if request is None else request.url.path)
    if problem.retry_after:
        body["retry_after"] = problem.retry_after
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    # pydantic names the union branch it tried (e.g. body.kdf.pbkdf2-sha256.salt): keep the path
    return ".".join(
        p for p in parts if not p.startswith("function-") and p not in ("tagged-union[Pbkdf2,Argon2id]",)
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _loc(e.get("loc", ())), "problem": str(e.get("msg", "invalid"))}
            for e in exc.errors()[:20]
        ]
        first = errors[0] if errors else {"field": "body", "problem": "invalid"}
        problem = Problem(
            422,
            "invalid",
            f"{first['field']}: {first['problem']}",
            field=first["field"],
            extra={"errors": errors},
        )
        return problem_response(problem, request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        return problem_response(Problem(exc.status_code, slug, detail), request)


class BodyLimit:
    """Refuse a body over its route's limit with 413, whether or not Content-Length says so
    (a chunked body is counted as it streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await _send_413(send, limit)
                    return
        seen = 0
        refused = False

        async def counting() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await _send_413(send, limit)
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting, guarded)


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_BASE + "too-large",
            "title": TITLES[413],
            "status": 413,
            "detail": f"the body exceeds this route's limit of {limit} bytes",
            "field": "body",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *[(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()],
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(self), microphone=(), geolocation=(), payment=(), usb=()",
}


class SecurityHeaders:
    """Every response: a strict CSP (the web app is static ES modules, no inline script),
    no sniffing, no framing, no referrer; HSTS when cookies are Secure (served over TLS);
    API responses are never cached."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if hsts:
            self.headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", ())}
                extra = [
                    (k.encode(), v.encode()) for k, v in self.headers.items() if k.encode() not in present
                ]
                if api and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
