"""A throw-away PostgreSQL cluster for tests: initdb in a temporary directory, pg_ctl on a
free loopback port (fsync off), one database per test, stopped by pg_ctl at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return (PG_BIN / "initdb").exists() and shutil.which("runuser") is not None and os.geteuid() == 0


@dataclass
class Cluster:
    directory: Path
    port: int
    counter: int = 0

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return out.stdout

    def new_database(self) -> str:
        self.counter += 1
        name = f"t{os.getpid()}_{self.counter}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def dump(self, url: str) -> bytes:
        name = url.rsplit("/", 1)[1]
        return subprocess.run(
            [str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", name],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout

    def stop(self) -> None:
        as_postgres("pg_ctl", "-w", "-D", str(self.directory), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.directory.parent, ignore_errors=True)


def as_postgres(program: str, *args: str, check: bool = True) -> None:
    """Run a PostgreSQL server program as the postgres user (initdb refuses root)."""
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / program), *args],
        check=check,
        capture_output=True,
        timeout=120,
    )


def start(max_connections: int = 200) -> Cluster:
    root = Path(tempfile.mkdtemp(prefix="mm-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_postgres("initdb", "-D", str(data), "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
    port = free_port()
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c synchronous_commit=off "
        f"-c full_page_writes=off -c max_connections={max_connections}"
    )
    as_postgres("pg_ctl", "-w", "-D", str(data), "-o", opts, "-l", str(data / "server.log"), "start")
    return Cluster(data, port)
