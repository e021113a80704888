"""Sync tests: the device's real sync client against the real dashboard on loopback
(SQLite, and PostgreSQL where a test takes the `db_url` parameter)."""

from support.dashboard_fixtures import db_url, make_guardian, pg_cluster, server  # noqa: F401
