"""Dashboard integration tests: the real server on loopback, SQLite and PostgreSQL."""

from support.dashboard_fixtures import (  # noqa: F401
    clock,
    clocked_server,
    db_url,
    make_device,
    make_guardian,
    pg_cluster,
    server,
)
