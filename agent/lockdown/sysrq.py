"""Magic SysRq off: in the sysctl files the boot applies, and (running) in the kernel."""

from __future__ import annotations

from collections.abc import Sequence

from agent.lockdown.model import Context, Finding, RootView
from agent.lockdown.units import conf_files

SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d",
               "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"  # systemd-sysctl reads it after every sysctl.d file
KEY = "kernel.sysrq"
FIX = f"{KEY} = 0 in /etc/sysctl.d/60-minormode-lockdown.conf (config/lockdown)"


def sysctl_files(view: RootView) -> tuple[str, ...]:
    """The files in the order systemd-sysctl applies them (/etc/sysctl.conf last)."""
    return (*conf_files(view, SYSCTL_DIRS), SYSCTL_CONF)


def sysctl_value(view: RootView, key: str) -> tuple[str | None, str]:
    """The value `key` ends with, and the file that set it (None, "": never set)."""
    value, where = None, ""
    for path in sysctl_files(view):
        for raw in (view.read_text(path) or "").splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")) or "=" not in line:
                continue
            name, _, given = line.partition("=")
            if name.strip().lstrip("-").replace("/", ".") == key:
                value, where = given.strip(), path
    return value, where


def _is_zero(value: str) -> bool:
    try:
        return int(value, 0) == 0
    except ValueError:
        return False


def sysrq_configured(view: RootView, _ctx: Context) -> Sequence[Finding]:
    value, where = sysctl_value(view, KEY)
    if value is not None and _is_zero(value):
        return []
    shown = "unset (the kernel's default, Debian's enables most functions)" if value is None else value
    return [Finding("sysrq.sysctl", f"{KEY} is {shown}", where or SYSCTL_CONF, FIX)]


def sysrq_running(_view: RootView, ctx: Context) -> Sequence[Finding]:
    if ctx.runtime is None or ctx.runtime.sysrq is None or _is_zero(ctx.runtime.sysrq):
        return []
    return [Finding("sysrq.running", f"the kernel has {KEY}={ctx.runtime.sysrq} now",
                    "/proc/sys/kernel/sysrq", f"{FIX}; then sysctl -w {KEY}=0 or reboot")]
