"""The real dashboard server on loopback for tests: in a thread (uvicorn.Server) or in a
subprocess (`minormode-dashboard serve`, its log in a file), on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from dashboard.app import create_app
from dashboard.config import Settings
from dashboard.migrations import upgrade
from support.loopback import LoopbackServer
from support.orphans import die_with_parent
from support.pgcluster import free_port

FAST_HASH = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}


def server_settings(database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        database_url=database_url,
        cookie_secure=False,
        webpush_allow_http_loopback=True,
        static_dir=None,
        sqlite_synchronous="NORMAL",
        **FAST_HASH,
    )  # type: ignore[arg-type]
    return replace(base, **overrides)


class ThreadServer(LoopbackServer):
    """The dashboard app in this process (tests may reach into `state`)."""

    def __init__(self, settings: Settings, **app_kwargs: Any) -> None:
        upgrade(settings.database_url)
        super().__init__(create_app(settings, **app_kwargs), lifespan="on")
        self.state = self.app.state.mm

    def start(self) -> ThreadServer:
        super().start()
        return self


class ProcessServer:
    """`python -m dashboard.cli serve` with the test settings in its environment."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.args = args
        self.log_path = log_path
        self.env = {
            **os.environ,
            "MINORMODE_DASHBOARD_DATABASE_URL": database_url,
            "MINORMODE_DASHBOARD_COOKIE_SECURE": "false",
            "MINORMODE_DASHBOARD_STATIC_DIR": "",
            "MINORMODE_DASHBOARD_WEBPUSH_ALLOW_HTTP_LOOPBACK": "true",
            "MINORMODE_DASHBOARD_SQLITE_SYNCHRONOUS": "NORMAL",
            **{f"MINORMODE_DASHBOARD_{k.upper()}": str(v) for k, v in FAST_HASH.items()},
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ProcessServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            die_with_parent([
                sys.executable,
                "-m",
                "dashboard.cli",
                "serve",
                "--port",
                str(self.port),
                "--insecure-cookies",
                "--log-level",
                "info",
                "--access-log",
                *self.args,
            ]),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/api/v1/server-key", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the dashboard process did not start: {self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
