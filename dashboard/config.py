"""The server's settings: one immutable value built from the command line or the
environment (`MINORMODE_DASHBOARD_*`), passed to `create_app`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dashboard.db.engine import DEFAULT_URL

ENV_PREFIX = "MINORMODE_DASHBOARD_"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_URL
    # The origin browsers and devices use (scheme://host[:port]), as the reverse proxy serves
    # it. Device log-in signatures are bound to it; None: derived from each request (dev only).
    public_origin: str | None = None
    cookie_secure: bool = True  # off only for plain-HTTP development on loopback
    session_ttl: int = 7 * 86_400
    device_token_ttl: int = 900
    pairing_ttl: int = 600
    invitation_ttl: int = 7 * 86_400
    # Argon2id of the browser's auth key (already a PBKDF2/Argon2 output; this is the second
    # layer against a stolen database). Tests lower it.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    argon2_parallelism: int = 1
    hash_concurrency: int = 2  # password hashes at once (each ~64 MiB)
    hash_queue: int = 32  # waiting beyond this answers 503
    login_free_failures: int = 3  # then back-off doubles from 1 s up to 15 min
    pairing_tries_per_minute: int = 5  # wrong codes per account
    pairing_tries_global_per_minute: int = 120
    long_poll_max: int = 30
    heartbeat: float = 25.0
    retention_sweep: int = 3_600  # seconds between retention purges in `serve`
    webpush_allow_http_loopback: bool = False  # tests: the mock push service on 127.0.0.1
    webpush_subject: str = "mailto:operator@example.invalid"
    # the guardian web app as scripts/setup builds it (dashboard/web/dist; see web/README.md)
    static_dir: Path | None = field(default_factory=lambda: Path(__file__).parent / "web" / "dist")
    sqlite_synchronous: str = "FULL"
    pool_size: int = 10
    log_requests: bool = False

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, raw, getattr(cls(), f.name))
        merged: dict[str, Any] = {**values, **{k: v for k, v in overrides.items() if v is not None}}
        return replace(cls(), **merged)


def _convert(name: str, raw: str, default: object) -> object:
    if isinstance(default, bool):
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"{ENV_PREFIX}{name.upper()}: expected true or false, got {raw!r}")
        return raw.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}{name.upper()}: expected an integer, got {raw!r}") from exc
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, Path) or name == "static_dir":
        return Path(raw) if raw else None
    return raw
