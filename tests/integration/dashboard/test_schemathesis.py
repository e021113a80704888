"""Property-based tests from the published OpenAPI document against the running server
(schemathesis): whatever is sent, no 5xx, and every response matches the schema (status
code documented, content type, body). Requests run both anonymous and as a logged-in
guardian with a paired device (cookie + CSRF header), so the handlers behind the
authentication are reached too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import pgcluster
from support.dashboard_clients import GuardianClient, SimDevice, pair
from support.dashboard_fixtures import postgres_wanted
from support.dashboard_server import ThreadServer, server_settings

EXAMPLES = int(os.environ.get("MINORMODE_SCHEMATHESIS_EXAMPLES", "10"))  # per operation and run; CI samples anew each run
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live(request, tmp_path_factory):
    cluster = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('st') / 'dashboard.sqlite'}"
    else:
        if not postgres_wanted():
            pytest.skip("MINORMODE_TEST_POSTGRES=0")
        cluster = pgcluster.start()
        url = cluster.new_database()
    # no back-off or rate limit in the way of generated requests (they are tested elsewhere)
    srv = ThreadServer(server_settings(url, login_free_failures=10**6, pairing_tries_per_minute=10**6,
                                       pairing_tries_global_per_minute=10**6, long_poll_max=0)).start()
    mum = GuardianClient(srv.url, "mum@example.com").signup()
    dev = SimDevice(srv.url, Path(tmp_path_factory.mktemp("dev")))
    pair(mum, dev)
    yield srv, mum, dev
    dev.close()
    srv.stop()
    if cluster is not None:
        cluster.stop()


def _run_all(srv, headers_for, cookies) -> tuple[int, list[str]]:
    """Every operation of the document, `EXAMPLES` generated cases each (schemathesis'
    pytest plugin does not load under this pytest, so hypothesis drives it directly)."""
    api = schemathesis.openapi.from_url(srv.url + "/api/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def run(case) -> None:
            if case.method == "DELETE" and case.path == "/api/v1/session":
                return  # would end the session the other cases use
            headers = {**(case.headers or {}), **headers_for(case)}
            case.call_and_validate(base_url=srv.url, checks=CHECKS, headers=headers, cookies=cookies, timeout=60)

        try:
            run()
        except FailureGroup as exc:  # a check failed: note it and go on to the next operation
            failures.append(f"{operation.method.upper()} {operation.path}: {exc.exceptions[0]}"[:3000])
    return operations, failures


def test_api_anonymous(live) -> None:
    srv, _mum, _dev = live
    operations, failures = _run_all(srv, lambda case: {}, None)
    assert operations >= 60
    assert not failures, "\n\n".join(failures)


def test_api_as_guardian_and_device(live) -> None:
    srv, mum, dev = live

    def headers_for(case) -> dict[str, str]:
        if case.path.startswith("/api/v1/device/"):
            return {"Authorization": f"Bearer {dev.token}"}
        return {"X-CSRF-Token": mum.csrf}
    _operations, failures = _run_all(srv, headers_for, {"mm_session": mum.http.cookies.get("mm_session")})
    assert not failures, "\n\n".join(failures)


def test_the_checks_bite(live) -> None:
    """The same checks against a document that lies about one response must fail, so the
    runs above could have failed too."""
    import httpx

    srv, _mum, _dev = live
    doc = httpx.get(srv.url + "/api/openapi.json").json()
    doc["paths"]["/api/v1/server-key"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "object", "required": ["server_key"], "properties": {"server_key": {"type": "integer"}}}
    api = schemathesis.openapi.from_dict(doc)
    operation = next(r.ok() for r in api.get_all_operations() if r.ok().path == "/api/v1/server-key")

    @given(operation.as_strategy())
    @settings(max_examples=1, deadline=None, database=None)
    def run(case) -> None:
        case.call_and_validate(base_url=srv.url, checks=CHECKS)

    with pytest.raises(FailureGroup) as failed:
        run()
    assert "Response violates schema" in str(failed.value.exceptions[0])
