"""pytest fixtures for the dashboard's tests: the database parameter (SQLite and a
throw-away PostgreSQL, both on by default; MINORMODE_TEST_POSTGRES=0 skips PostgreSQL), the
real server on loopback, and guardian and device clients."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import pgcluster
from support.dashboard_clients import GuardianClient, SimDevice
from support.dashboard_server import ThreadServer, server_settings

_emails = itertools.count(1)


def postgres_wanted() -> bool:
    return os.environ.get("MINORMODE_TEST_POSTGRES", "1") != "0"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgcluster.Cluster]:
    if not postgres_wanted():
        pytest.skip("MINORMODE_TEST_POSTGRES=0")
    if not pgcluster.available():
        pytest.fail(
            "PostgreSQL 15 (config/deps/apt-dashboard.txt) and root are needed for the postgres tests"
        )
    cluster = pgcluster.start()
    yield cluster
    cluster.stop()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dashboard.sqlite'}"
        return
    cluster: pgcluster.Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.new_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture
def server(db_url: str) -> Iterator[ThreadServer]:
    srv = ThreadServer(server_settings(db_url)).start()
    yield srv
    srv.stop()


class ManualClock:
    """A clock the test moves by hand (injected into the server: no sleeping tests)."""

    def __init__(self, start: int = 1_800_000_000) -> None:
        self.t = start

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: int) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(int(__import__("time").time()))


@pytest.fixture
def clocked_server(db_url: str, clock: ManualClock) -> Iterator[ThreadServer]:
    srv = ThreadServer(server_settings(db_url), clock=clock).start()
    yield srv
    srv.stop()


@pytest.fixture
def make_guardian(server: ThreadServer) -> Iterator[Callable[..., GuardianClient]]:
    made: list[GuardianClient] = []

    def make(label: str = "Mum", signup: bool = True, base_url: str | None = None) -> GuardianClient:
        g = GuardianClient(base_url or server.url, f"guardian{next(_emails)}@example.com", label=label)
        made.append(g)
        return g.signup() if signup else g

    yield make
    for g in made:
        g.close()


@pytest.fixture
def make_device(server: ThreadServer, tmp_path: Path) -> Iterator[Callable[..., SimDevice]]:
    made: list[SimDevice] = []

    def make(label: str = "ET-10", base_url: str | None = None) -> SimDevice:
        d = SimDevice(base_url or server.url, tmp_path / f"device{len(made)}", label)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


__all__: list[Any] = [
    "clock",
    "clocked_server",
    "db_url",
    "make_device",
    "make_guardian",
    "pg_cluster",
    "server",
]
