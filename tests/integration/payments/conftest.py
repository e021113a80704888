"""A private dbus-daemon per test, and caller programs at paths the broker can tell apart."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


# Like the system bus: default deny, plus only the broker's own policy file from config/.
_SYSTEM_LIKE = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""
POLICY_FILE = Path(__file__).parents[3] / "config" / "dbus" / "org.minormode.Payments1.conf"


def _start_bus(tmp_path: Path, template: str) -> Iterator[str]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    config = tmp_path / "bus.conf"
    config.write_text(template.format(socket=tmp_path / "bus.sock", policy=POLICY_FILE))
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "bus.log").open("w"),  # its notices, for a failing test to read
        text=True,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address.startswith("unix:"), f"dbus-daemon printed {address!r}"
    try:
        yield address
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    """A private bus that allows everything (the broker does its own checks)."""
    yield from _start_bus(tmp_path, _CONFIG)


@pytest.fixture
def system_like_bus(tmp_path: Path) -> Iterator[str]:
    """A private bus with system-bus defaults and our shipped policy file."""
    yield from _start_bus(tmp_path, _SYSTEM_LIKE)


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
