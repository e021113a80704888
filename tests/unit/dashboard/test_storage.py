"""Storage on SQLite and PostgreSQL: the migrations make exactly the schema the code uses,
run twice harmlessly, the server's secrets are made once, the back-off arithmetic holds,
and SQLite writers wait for each other instead of failing."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from dashboard.db.engine import Database
from dashboard.db.schema import metadata, server_secrets, throttles
from dashboard.migrations import current, upgrade
from dashboard.secrets import load_or_create
from dashboard.security import throttle


def test_migrations_make_the_schema_the_code_uses(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    assert current(db_url) == "0001"
    db = Database(db_url, pool_size=0)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert set(metadata.tables) <= tables
    finally:
        db.dispose()


def test_secrets_are_made_once(db_url: str) -> None:
    upgrade(db_url)
    db = Database(db_url)
    try:
        first, second = load_or_create(db), load_or_create(db)
        assert first.signing_public == second.signing_public and first.token_key == second.token_key
        assert len(first.vapid_public) == 65 and first.vapid_public[0] == 4
        with db.read() as conn:
            assert conn.execute(select(func.count()).select_from(server_secrets)).scalar() == 4
    finally:
        db.dispose()


def test_backoff_doubles_and_resets(db_url: str) -> None:
    upgrade(db_url)
    db = Database(db_url)
    try:
        with db.write() as conn:
            waits = [throttle.fail(conn, "k", 1000, 3) for _ in range(14)]
        assert waits == [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
        with db.write() as conn:
            throttle.reset(conn, "k")
            assert conn.execute(select(func.count()).select_from(throttles)).scalar() == 0
            for _ in range(3):
                throttle.bump(conn, "w", 100, 60)
            assert throttle.used_in_window(conn, "w", 159, 60) == 3
            assert throttle.used_in_window(conn, "w", 160, 60) == 0
    finally:
        db.dispose()


def run_threads(work, n: int) -> list[BaseException]:
    """Run `work` in `n` threads at once; the exceptions they raised."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - returned to the test, which asserts on them
            errors.append(exc)
    threads = [threading.Thread(target=guarded) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_concurrent_backoff_failures_on_a_new_key(db_url: str) -> None:
    """Many failed log-ins at once for a key nobody failed before: no unique-key race."""
    upgrade(db_url)
    db = Database(db_url)

    def fail() -> None:
        with db.write() as conn:
            throttle.fail(conn, "fresh", 1000, 3)
    try:
        assert run_threads(fail, 8) == []
        with db.read() as conn:
            assert conn.execute(select(throttles.c.failures).where(throttles.c.key == "fresh")).scalar() == 8
    finally:
        db.dispose()


def test_concurrent_writers_serialise(db_url: str) -> None:
    upgrade(db_url)
    db = Database(db_url)
    with db.write() as conn:  # the row exists first: PostgreSQL orders writers by its lock
        conn.execute(throttles.insert().values(key="count", failures=0, window_start=0, blocked_until=0))

    def writer() -> None:
        for _ in range(20):
            with db.write() as conn:
                row = conn.execute(select(throttles.c.failures).where(throttles.c.key == "count")
                                   .with_for_update()).one()
                conn.execute(throttles.update().where(throttles.c.key == "count").values(failures=row.failures + 1))
    try:
        assert run_threads(writer, 4) == []
        with db.read() as conn:
            assert conn.execute(select(throttles.c.failures).where(throttles.c.key == "count")).scalar() == 80
    finally:
        db.dispose()
