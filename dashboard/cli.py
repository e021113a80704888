"""`minormode-dashboard`: serve, migrate, and the operator's admin commands.

The admin commands see what the server sees: counts, ids, public keys and times. None of
them can print a child's data in the clear, since the server never holds a key that opens it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from dashboard.config import ENV_PREFIX, Settings
from dashboard.db import schema
from dashboard.db.engine import DEFAULT_URL, Database, normalise_url
from dashboard.db.schema import accounts, devices, sessions


def app_factory() -> Any:
    """For uvicorn's --factory (several worker processes): settings from the environment."""
    # The application (FastAPI, the accounts' KDF, Web Push...) is imported by the server
    # only: `migrate` (which `serve` runs first, in a child) and the admin commands start
    # in a fraction of the time without it (3.6 -> 1.2 s here).
    from dashboard.app import create_app  # noqa: PLC0415 - see above

    return create_app(Settings.from_env())


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {"database_url": args.db}
    if getattr(args, "public_origin", None):
        overrides["public_origin"] = args.public_origin
    if getattr(args, "insecure_cookies", False):
        overrides["cookie_secure"] = False
    return Settings.from_env(**overrides)


def cmd_migrate(args: argparse.Namespace) -> int:
    from dashboard.migrations import upgrade  # noqa: PLC0415 - Alembic costs ~8 MiB: not in the server

    upgrade(normalise_url(args.db or Settings.from_env().database_url))
    print("migrated to the latest schema")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        print("minormode-dashboard serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    import uvicorn  # noqa: PLC0415 - the server only (see app_factory)

    settings = _settings(args)
    if not args.no_migrate:
        # in a child process: Alembic and what it imports (~8 MiB) stay out of the server
        env = {**os.environ, ENV_PREFIX + "DATABASE_URL": settings.database_url}
        migrated = subprocess.run([sys.executable, "-m", "dashboard.cli", "migrate"], env=env, check=False)
        if migrated.returncode != 0:
            return migrated.returncode
    for key, value in (
        ("database_url", settings.database_url),
        ("public_origin", settings.public_origin),
        ("cookie_secure", settings.cookie_secure),
    ):
        if value is not None:
            os.environ[ENV_PREFIX + key.upper()] = str(value)
    uvicorn.run(
        "dashboard.cli:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_level=args.log_level,
        access_log=args.access_log,
        ws=args.ws,
        loop=args.loop,
        ws_ping_interval=None,  # the application's own heartbeat (dashboard.push.heartbeat)
        ws_per_message_deflate=False,  # messages are a few bytes; zlib state is ~60 KiB a socket
        timeout_graceful_shutdown=5,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    db = Database(_settings(args).database_url, pool_size=0)
    out: dict[str, int] = {}
    with db.read() as conn:
        for name in (
            "accounts",
            "families",
            "devices",
            "messages",
            "journal_records",
            "summaries",
            "child_requests",
            "audit",
            "webpush_subscriptions",
        ):
            table = schema.metadata.tables[name]
            out[name] = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
    db.dispose()
    print(json.dumps(out, indent=2))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from dashboard.datarights import purge_expired  # noqa: PLC0415 - see app_factory

    db = Database(_settings(args).database_url, pool_size=0)
    with db.write() as conn:
        purged = purge_expired(conn, int(time.time()))
    db.dispose()
    print(json.dumps(purged))
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from dashboard.accounts import normalise_email  # noqa: PLC0415 - see app_factory

    db = Database(_settings(args).database_url, pool_size=0)
    with db.write() as conn:
        row = conn.execute(
            select(accounts.c.id).where(accounts.c.email == normalise_email(args.email))
        ).first()
        if row is None:
            print(f"no account {args.email}", file=sys.stderr)
            return 1
        conn.execute(accounts.update().where(accounts.c.id == row.id).values(disabled=not args.enable))
        conn.execute(sessions.delete().where(sessions.c.account_id == row.id))
    db.dispose()
    print(f"{args.email}: {'enabled' if args.enable else 'disabled (sessions ended)'}")
    return 0


def cmd_new_epoch(args: argparse.Namespace) -> int:
    """After restoring a backup: every device resends its journal from its oldest record."""
    db = Database(_settings(args).database_url, pool_size=0)
    with db.write() as conn:
        ids = [r.id for r in conn.execute(select(devices.c.id)).all()]
        for device_id in ids:
            conn.execute(devices.update().where(devices.c.id == device_id).values(epoch=os.urandom(16).hex()))
    db.dispose()
    print(f"new journal epoch for {len(ids)} devices")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minormode-dashboard", description=__doc__)
    p.add_argument(
        "--db",
        default=None,
        help=f"database URL (default {DEFAULT_URL}, or "
        f"{ENV_PREFIX}DATABASE_URL); postgresql://user@host/db for PostgreSQL",
    )
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes (PostgreSQL only for more than 1)")
    serve.add_argument("--public-origin", help="https://dashboard.example.cn as the TLS proxy serves it")
    serve.add_argument("--insecure-cookies", action="store_true", help="plain HTTP on loopback (development)")
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-*")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument("--no-migrate", action="store_true")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM), without a TLS proxy")
    serve.add_argument("--tls-key", help="the certificate's private key (PEM)")
    serve.add_argument(
        "--loop",
        default="auto",
        choices=("auto", "asyncio", "uvloop"),
        help="uvicorn's event loop (auto: uvloop when installed)",
    )
    serve.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=("websockets-sansio", "websockets", "auto"),
        help="uvicorn's WebSocket implementation (sans-I/O holds idle sockets in less memory)",
    )
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    admin = sub.add_parser("admin", help="operator commands (no path to plaintext)")
    asub = admin.add_subparsers(dest="admin", required=True)
    asub.add_parser("stats", help="counts of what is stored").set_defaults(func=cmd_stats)
    asub.add_parser("purge", help="apply every device's retention period now").set_defaults(func=cmd_purge)
    dis = asub.add_parser("disable-account", help="block an account's log-in and end its sessions")
    dis.add_argument("email")
    dis.add_argument("--enable", action="store_true", help="undo")
    dis.set_defaults(func=cmd_disable)
    asub.add_parser(
        "new-epoch", help="after a restore from backup: devices resend their journals"
    ).set_defaults(func=cmd_new_epoch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.db is None:
        args.db = Settings.from_env().database_url
    if args.command == "admin":
        problem = _schema_problem(normalise_url(args.db))
        if problem:
            print(f"minormode-dashboard: {problem}", file=sys.stderr)
            return 2
    try:
        result: int = args.func(args)
    except (OperationalError, ValueError) as exc:  # an unreachable or unusable database, a bad URL
        print(f"minormode-dashboard: --db {args.db}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return result


def _schema_problem(url: str) -> str | None:
    """Why the admin commands cannot run on this database (None: they can)."""
    from dashboard.migrations import current  # noqa: PLC0415 - Alembic costs ~8 MiB: not in the server

    try:
        revision = current(url)
    except (OperationalError, ValueError) as exc:
        return f"--db {url}: cannot open the database ({str(exc).splitlines()[0]})"
    if revision is None:
        return f"--db {url}: no dashboard schema here; run `minormode-dashboard migrate` first"
    return None


if __name__ == "__main__":
    sys.exit(main())
