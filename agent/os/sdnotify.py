"""A few-line sd_notify: READY, WATCHDOG and STATUS to systemd, no libsystemd needed."""

from __future__ import annotations

import os
import socket


def notify(*assignments: str) -> bool:
    """Send `KEY=VALUE` lines to $NOTIFY_SOCKET; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto("\n".join(assignments).encode(), address)
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog period systemd asked for (seconds), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
