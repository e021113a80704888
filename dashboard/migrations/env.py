"""Alembic environment: the URL comes from the config `dashboard.migrations` builds."""

from __future__ import annotations

from alembic import context

from dashboard.db.engine import Database
from dashboard.db.schema import metadata

config = context.config
db = Database(config.get_main_option("sqlalchemy.url") or "", pool_size=0)
with db.engine.connect() as connection:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=db.is_sqlite, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()
db.dispose()
