"""A private dbus-daemon per test, and caller programs at paths the broker can tell apart."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.dev import devbus

POLICY_FILE = Path(__file__).parents[3] / "config" / "dbus" / "org.minormode.Payments1.conf"


def _bus(tmp_path: Path, **options: Any) -> Iterator[str]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    where = tmp_path / "bus"
    where.mkdir()
    bus = devbus.start_bus(directory=where, **options)  # its log stays there, for a failing test
    try:
        yield bus.address
    finally:
        bus.stop()


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    """A private bus that allows everything (the broker does its own checks)."""
    yield from _bus(tmp_path, system=False, agent_policy=None, permissive=True)


@pytest.fixture
def system_like_bus(tmp_path: Path) -> Iterator[str]:
    """A private bus with system-bus defaults and only our shipped policy file deciding
    (no rule for the test's own user: root calling another interface must be refused)."""
    yield from _bus(tmp_path, agent_policy=POLICY_FILE, owner_may_call=False)


@pytest.fixture
def callers(tmp_path: Path) -> dict[str, Path]:
    """Copies of dbus-send: the kernel reports each copy's own path as the caller's exe."""
    src = shutil.which("dbus-send")
    if src is None:
        pytest.skip("dbus-send is not installed (Debian package dbus)")
    out = {}
    for name in ("shop", "notes", "intruder"):
        d = tmp_path / "apps" / name
        d.mkdir(parents=True)
        shutil.copy2(src, d / name)
        out[name] = d / name
    return out


# The dashboard on loopback, for ask-to-buy answered through it (SQLite and PostgreSQL).
from support.dashboard_fixtures import db_url, make_guardian, pg_cluster, server  # noqa: E402, F401
