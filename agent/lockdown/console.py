"""Console lockdown: no login prompt on a virtual terminal, the serial port or a debug
shell, and no Ctrl+Alt+Del. A USB keyboard must not reach a getty (Ctrl+Alt+Fn), and
the serial header must not give a login prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.lockdown.model import Context, Finding, RootView
from agent.lockdown.units import (
    ETC_UNITS,
    conf_files,
    drop_ins,
    effective,
    enabled_units,
    is_masked,
    is_masked_or_template_masked,
    unit_stem,
)

# Units that put a login prompt or a root shell on a terminal.
GETTY_UNITS = (
    "getty@.service",  # virtual terminals
    "autovt@.service",  # logind's on-demand VT getty (an alias of getty@)
    "serial-getty@.service",  # serial ports (systemd-getty-generator adds one per console=)
    "console-getty.service",
    "container-getty@.service",
    "getty-static.service",  # Debian: getty on tty2-6 when D-Bus is missing
    "debug-shell.service",  # root shell on tty9
)
GETTY_STEMS = frozenset(unit_stem(u) for u in GETTY_UNITS)
LOGIND = "/etc/systemd/logind.conf"
LOGIND_DROP_INS = ("/etc/systemd/logind.conf.d", "/run/systemd/logind.conf.d",
                   "/usr/local/lib/systemd/logind.conf.d", "/usr/lib/systemd/logind.conf.d")
LOGIND_DEFAULT_VTS = "6"  # logind's default NAutoVTs and ReserveVT
SYSTEM_CONF = "/etc/systemd/system.conf"
SYSTEM_DROP_INS = ("/etc/systemd/system.conf.d", "/run/systemd/system.conf.d",
                   "/usr/local/lib/systemd/system.conf.d", "/usr/lib/systemd/system.conf.d")
LOCKDOWN_DROP_IN = "60-minormode-lockdown.conf"
XORG_SERVER = "/usr/lib/xorg/Xorg"
XORG_CONF = "/etc/X11/xorg.conf"
XORG_DIRS = ("/etc/X11/xorg.conf.d", "/usr/share/X11/xorg.conf.d")
XORG_FLAGS = {"DontVTSwitch": "Ctrl+Alt+Fn switches to a text console",
              "DontZap": "Ctrl+Alt+Backspace kills the session"}
_XORG_OPTION = re.compile(r'^\s*Option\s+"(\w+)"(?:\s+"([^"]*)")?')
_XORG_TRUE = frozenset({"true", "on", "yes", "1"})


def _mask_fix(unit: str) -> str:
    return f"ln -sfn /dev/null {ETC_UNITS}/{unit} (config/lockdown/masked-units.txt)"


def getty_masked(view: RootView, _ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"console.masked:{unit}", f"{unit} is not masked: it can start a login prompt or a shell",
                f"{ETC_UNITS}/{unit}", _mask_fix(unit))
        for unit in GETTY_UNITS if not is_masked(view, unit)
    ]


def getty_enabled(view: RootView, _ctx: Context) -> Sequence[Finding]:
    return [
        Finding(f"console.getty-enabled:{e.unit}", f"{e.unit} is enabled and not masked", e.link,
                f"rm {e.link} and mask its template")
        for e in enabled_units(view)
        if e.unit.endswith(".service") and unit_stem(e.unit) in GETTY_STEMS
        and not is_masked_or_template_masked(view, e.unit)
    ]


def logind_vts(view: RootView, _ctx: Context) -> Sequence[Finding]:
    files = drop_ins(view, LOGIND, LOGIND_DROP_INS)
    out = []
    for key in ("NAutoVTs", "ReserveVT"):
        value, where = effective(view, files, "Login", key)
        if (value or LOGIND_DEFAULT_VTS) != "0":
            out.append(Finding(
                f"console.logind:{key}",
                f"logind {key}={value or LOGIND_DEFAULT_VTS + ' (the default)'}: VTs get a login prompt",
                where, f"{key}=0 in /etc/systemd/logind.conf.d/{LOCKDOWN_DROP_IN} (config/lockdown)"))
    return out


def ctrl_alt_del(view: RootView, _ctx: Context) -> Sequence[Finding]:
    out = []
    if not is_masked(view, "ctrl-alt-del.target"):
        out.append(Finding("console.ctrl-alt-del:target", "ctrl-alt-del.target is not masked: "
                           "Ctrl+Alt+Del reboots", f"{ETC_UNITS}/ctrl-alt-del.target",
                           _mask_fix("ctrl-alt-del.target")))
    value, where = effective(view, drop_ins(view, SYSTEM_CONF, SYSTEM_DROP_INS), "Manager",
                             "CtrlAltDelBurstAction")
    if value != "none":
        out.append(Finding("console.ctrl-alt-del:burst",
                           f"CtrlAltDelBurstAction={value or 'reboot-force (the default)'}: "
                           "7 presses in 2 s reboot at once", where,
                           f"CtrlAltDelBurstAction=none in /etc/systemd/system.conf.d/{LOCKDOWN_DROP_IN}"))
    return out


def xorg_vt_switching(view: RootView, _ctx: Context) -> Sequence[Finding]:
    """Xorg switches VTs on Ctrl+Alt+Fn by itself (logind's NAutoVTs does not stop that)."""
    if not view.exists(XORG_SERVER):
        return []
    on = set()
    for path in (*conf_files(view, XORG_DIRS), XORG_CONF):
        for line in (view.read_text(path) or "").splitlines():
            match = _XORG_OPTION.match(line)
            if match and (match.group(2) is None or match.group(2).lower() in _XORG_TRUE):
                on.add(match.group(1))
    return [
        Finding(f"console.xorg:{flag}", f"Xorg is installed and {flag} is not set: {why}", XORG_DIRS[0],
                f'Option "{flag}" "true" in {XORG_DIRS[0]}/10-minormode-lockdown.conf (config/lockdown)')
        for flag, why in XORG_FLAGS.items() if flag not in on
    ]
