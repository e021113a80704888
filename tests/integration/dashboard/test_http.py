"""HTTP hygiene: security headers and CSP on every response, bounded bodies, problem+json
for unknown routes and bad input, OpenAPI published, the static mount for the web app."""

from __future__ import annotations

import httpx
from support.dashboard_server import ThreadServer, server_settings


def test_security_headers_everywhere(server) -> None:
    for path in ("/api/v1/server-key", "/api/openapi.json", "/api/v1/nope", "/api/v1/families"):
        r = httpx.get(server.url + path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in r.headers  # plain-HTTP test server: no HSTS


def test_unknown_route_and_bad_json_are_problems(server) -> None:
    r = httpx.get(server.url + "/api/v1/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = httpx.post(server.url + "/api/v1/accounts/prelogin", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"].startswith("body")
    r = httpx.post(server.url + "/api/v1/accounts/prelogin", json={"email": "a@b.c", "extra": 1})
    assert r.status_code == 422 and r.json()["field"] == "body.extra"
    r = httpx.post(server.url + "/api/v1/accounts/prelogin", json={"email": 5})
    assert r.status_code == 422 and r.json()["field"] == "body.email"


def test_bodies_are_bounded(server) -> None:
    big = b'{"email": "' + b"a" * 70_000 + b'@b.c"}'
    r = httpx.post(server.url + "/api/v1/accounts/prelogin", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"

    def chunks():
        yield b'{"email": "'
        for _ in range(20):
            yield b"a" * 10_000
        yield b'"}'
    r = httpx.post(server.url + "/api/v1/accounts/prelogin", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_openapi_is_published(server) -> None:
    doc = httpx.get(server.url + "/api/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/v1/device/journal" in doc["paths"]
    assert httpx.get(server.url + "/docs").status_code == 404  # no inline-script docs page


def test_static_mount_serves_the_web_app(db_url, tmp_path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>minormode</title><script type=module src=app.js></script>")
    (web / "app.js").write_text("export {};")
    srv = ThreadServer(server_settings(db_url, static_dir=web, cookie_secure=True)).start()
    try:
        r = httpx.get(srv.url + "/")
        assert r.status_code == 200 and "minormode" in r.text
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert httpx.get(srv.url + "/app.js").headers["content-type"].startswith("text/javascript")
        assert httpx.get(srv.url + "/api/v1/server-key").status_code == 200  # the API wins over the mount
    finally:
        srv.stop()
