"""Dashboard unit tests (storage and pure parts, on SQLite and PostgreSQL)."""

from support.dashboard_fixtures import db_url, pg_cluster  # noqa: F401
