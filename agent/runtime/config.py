"""The daemon's settings: one typed, frozen `DaemonConfig`, from the command line and the
settings files.

`--config /etc/minormode/agent.conf` (what the unit passes) reads that TOML file and then
every `agent.conf.d/*.conf` beside it in lexical order, a later file winning per key
(`agent.core.layered`): the image ships its settings as `10-image.conf` and the
manufacturer's, rendered from factory.toml, as `20-factory.conf`; an administrator adds a
later drop-in. One key per long option (`child_uid = [1000]`, `exec_gate_mark = ["/"]`,
`dns_upstream = ["192.168.1.1:53"]`, `speed = 600.0`); an option given on the command line
wins over every file (tests, development mode). A bad file, key or value exits 2 naming
the file, the line and the key (every problem at once) and starts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from agent.core.layered import SettingsError, layered_files, merged, read_layers
from agent.core.policy import AgeBand
from agent.filter.resolvers import without_self
from agent.sync.origin import origin_of

DEFAULT_CHILD_UID = 1000
DEFAULT_DNS_LISTEN = ("127.0.0.1", 53)
Address = tuple[str, int]


@dataclass(frozen=True)
class DaemonConfig:
    policy: Path = Path("/etc/minormode/policy.toml")
    state: Path = Path("/var/lib/minormode")
    band: AgeBand = AgeBand.AGE_8_12  # whose defaults apply when no policy ever loaded
    dev: bool = False  # development mode: simulated clock, simulated child
    speed: float = 60.0  # dev: simulated seconds per real second
    start: datetime = datetime(2026, 11, 22, 22, 55, tzinfo=UTC)  # dev: simulated start
    child_uids_given: tuple[int, ...] = ()  # as named on the command line or in the file
    exec_gate_marks: tuple[str, ...] = ()
    exec_gate_bases: tuple[Path, ...] = ()  # resolved, existing
    lockers: tuple[Path, ...] = ()  # screen lockers whose running proves a lock (root-owned)
    desktop_dirs: tuple[str, ...] = ()  # where installed apps' desktop entries are; () = the XDG ones
    dns_upstreams: tuple[Address, ...] = ()
    dns_upstreams_from: Path | None = None  # a resolv.conf the filter follows (the network's)
    dns_listen: tuple[Address, ...] = ()
    lists: Path | None = None
    bus_address: str | None = None  # None: the system bus; "none": no D-Bus
    guardian_secret: Path | None = None
    dashboard: str | None = None  # the guardian dashboard's URL; None: no sync
    dashboard_ca: Path | None = None  # CA file for the dashboard's TLS (default: the system's)
    pair_on_start: bool = False  # unpaired: offer pairing at start (and again when a code expires)
    usbguard: bool = False  # drive USBGuard over D-Bus (the USB policy); the image sets it
    watch_devices: bool = False  # pyudev: new interfaces, block and input devices to the journal
    boot_check: bool = False  # at start: boot files and kernel command line as the image shipped
    log_level: str = "INFO"
    log_file: Path | None = None

    @property
    def child_uids(self) -> tuple[int, ...]:
        """The child's accounts (default uid 1000, the image's "child")."""
        return self.child_uids_given or (DEFAULT_CHILD_UID,)

    @property
    def dev_child_uid(self) -> int | None:
        """Development mode's child: the first uid named, else the developer (None)."""
        return self.child_uids_given[0] if self.child_uids_given else None

    @property
    def uses_bus(self) -> bool:
        return self.bus_address != "none"

    @property
    def dns_filter_on(self) -> bool:
        return bool(self.dns_upstreams) or self.dns_upstreams_from is not None

    @property
    def dns_listen_addresses(self) -> tuple[Address, ...]:
        return self.dns_listen or (DEFAULT_DNS_LISTEN,)

    @property
    def lists_dir(self) -> Path:
        return self.lists or self.state / "lists"


def address(text: str) -> Address:
    """"IP:PORT" or "[IPv6]:PORT"."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected IP:PORT, e.g. 127.0.0.1:53")
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {host!r} is not an IP address") from None
    return host.strip("[]"), int(port)


def dashboard_url(text: str) -> str:
    """A dashboard URL the sync client accepts (its origin is what log-ins are bound to)."""
    try:
        origin_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def base_path(text: str) -> Path:
    """An existing absolute file or directory, resolved (the gate compares real paths)."""
    path = Path(text)
    if not path.is_absolute() or not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r}: expected an existing absolute path")
    return path.resolve()


def _parser() -> argparse.ArgumentParser:
    # SUPPRESS: only options actually given appear, so the settings file fills the rest.
    p = argparse.ArgumentParser(prog="minormode-agent", argument_default=argparse.SUPPRESS,
                                description="The minor-mode agent daemon (see agent/runtime/README.md).")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="settings file (TOML, one key per long option) and its FILE.d/*.conf "
                        "drop-ins, later files winning per key (the unit passes "
                        "/etc/minormode/agent.conf); the command line wins over them")
    p.add_argument("--check-settings", action="store_true",
                   help="check the settings (the command line, --config and its drop-ins), print "
                        "them (one JSON object) as the agent would run with them, and exit: 0 when good, 2 "
                        "naming every problem; starts nothing")
    p.add_argument("--policy", type=Path, help="policy file (default /etc/minormode/policy.toml)")
    p.add_argument("--state", type=Path, help="state directory (default /var/lib/minormode)")
    p.add_argument("--band", choices=[b.value for b in AgeBand],
                   help="age band whose defaults apply when no policy ever loaded (default 8-12)")
    p.add_argument("--dev", action="store_true",
                   help="development mode: simulated clock and a simulated child using the device")
    p.add_argument("--speed", type=float, help="dev: simulated seconds per real second (default 60)")
    p.add_argument("--start", help="dev: simulated start time (default 2026-11-23T06:55:00+08:00)")
    p.add_argument("--child-uid", type=int, action="append",
                   help="the child's unix uid (repeatable; default 1000)")
    p.add_argument("--exec-gate-mark", action="append", metavar="MOUNT",
                   help="enforce the app allowlist at exec time on this mount (repeatable; the "
                        "device image passes /; without it the exec gate is off)")
    p.add_argument("--exec-gate-base", type=base_path, action="append", metavar="PATH",
                   help="a program (file) or every program under a directory the child's session "
                        "needs whatever the policy says, e.g. the user manager (repeatable)")
    p.add_argument("--desktop-dir", action="append", metavar="DIR",
                   help="where installed apps' desktop entries are (repeatable; default "
                        "/usr/share/applications, /usr/local/share/applications and Flatpak's)")
    p.add_argument("--locker", type=Path, action="append", metavar="PATH",
                   help="a screen locker program (root-owned) whose running as the child, with "
                        "LockedHint, proves a session locked (repeatable; without one no lock "
                        "verifies and a session in a lock is ended after the policy's grace)")
    p.add_argument("--dns-upstream", type=address, action="append", metavar="IP:PORT",
                   help="resolver the DNS filter forwards to (repeatable; without it the filter is off)")
    p.add_argument("--dns-upstreams-from", type=Path, metavar="FILE",
                   help="follow the resolvers this resolv.conf names (the network's: the image "
                        "passes /run/systemd/resolve/resolv.conf); switches the DNS filter on")
    p.add_argument("--dns-listen", type=address, action="append", metavar="IP:PORT",
                   help="where the DNS filter listens (default 127.0.0.1:53)")
    p.add_argument("--lists", type=Path, help="compiled domain lists (default STATE/lists)")
    p.add_argument("--bus-address",
                   help="D-Bus for logind and the agent's services (default: the system bus; "
                        "\"none\" runs without D-Bus)")
    p.add_argument("--guardian-secret", type=Path,
                   help="file with the secret shared at pairing, for offline guardian codes")
    p.add_argument("--dashboard", type=dashboard_url, metavar="URL",
                   help="the guardian dashboard (https://host[:port]; plain http only on loopback); "
                        "without it the device syncs nothing")
    p.add_argument("--dashboard-ca", type=Path, metavar="FILE",
                   help="CA certificates for the dashboard's TLS (default: the system's)")
    p.add_argument("--pair-on-start", action="store_true",
                   help="while unpaired, offer pairing at start and again whenever a code expires")
    p.add_argument("--usbguard", action="store_true",
                   help="drive USBGuard's USB policy over D-Bus (usbguard-dbus; the device image)")
    p.add_argument("--watch-devices", action="store_true",
                   help="journal new network interfaces, block and input devices (pyudev)")
    p.add_argument("--boot-check", action="store_true",
                   help="at start, check the boot files and kernel command line against the image's "
                        "boot manifest (a difference is a boot_tamper event)")
    p.add_argument("--log-level", help="default INFO")
    p.add_argument("--log-file", type=Path, help="log here instead of standard error")
    return p


# Settings-file keys: how each value is read (a list for repeatable options).
_SCALAR: dict[str, Callable[[str], Any]] = {
    "policy": Path, "state": Path, "band": str, "start": str, "lists": Path,
    "bus_address": str, "guardian_secret": Path, "log_level": str, "log_file": Path,
    "dashboard": dashboard_url, "dashboard_ca": Path, "dns_upstreams_from": Path,
}
_REPEATED: dict[str, Callable[[str], Any]] = {
    "exec_gate_mark": str, "exec_gate_base": base_path, "dns_upstream": address, "dns_listen": address,
    "locker": Path, "desktop_dir": str,
}


_FLAGS = ("dev", "pair_on_start", "usbguard", "watch_devices", "boot_check")

# Keys checked only together (a value alone may be refused for what another file sets).
_TOGETHER = ("dns_upstream", "dns_upstreams_from", "dns_listen")


def load_settings(main: Path) -> dict[str, Any]:
    """The settings file and its drop-ins, layered, as argparse would have parsed the same
    options; SettingsError naming the file, line and key of every problem (in every file,
    also a value a later file overrides)."""
    layers = read_layers(layered_files(str(main), os.listdir), lambda p: Path(p).read_bytes())
    out: dict[str, Any] = {}
    problems = []
    for settings in layers:
        for key, setting in settings.items():
            try:
                value = _setting(key, setting.value)
                if key not in _TOGETHER:
                    _config({key: value})  # its range or form, so the problem has its line
            except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
                problems.append(setting.problem(key, str(exc)))
            else:
                out[key] = value
    if not problems:
        try:
            _config(out)
        except ValueError as exc:
            winners = merged(layers)
            problems += [winners[k].problem(k, str(exc)) for k in _TOGETHER if k in winners]
    if problems:
        raise SettingsError(problems)
    return out


def _setting(key: str, value: object) -> object:
    if key in _SCALAR:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return _SCALAR[key](value)
    if key in _REPEATED or key == "child_uid":
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r}")
        if key == "child_uid":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise TypeError(f"expected a list of uids, got {value!r}")
            return value
        if not all(isinstance(v, str) for v in value):
            raise TypeError(f"expected a list of strings, got {value!r}")
        return [_REPEATED[key](v) for v in value]
    if key in _FLAGS:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if key == "speed":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    known = sorted([*_SCALAR, *_REPEATED, "child_uid", *_FLAGS, "speed"])
    raise TypeError(f"unknown setting (known: {', '.join(known)})")


def parse_config(argv: Sequence[str] | None = None) -> DaemonConfig:
    """The command line (and its --config file) as a DaemonConfig; exits 2 on bad input."""
    parser = _parser()
    given: dict[str, Any] = vars(parser.parse_args(argv))
    settings: Mapping[str, Any] = {}
    if "config" in given:
        try:
            settings = load_settings(given["config"])
        except SettingsError as exc:
            parser.error(f"--config {given['config']}: bad settings:\n{exc}")
    check = given.pop("check_settings", False)
    given.pop("config", None)
    try:
        config = _config({**settings, **given})
    except ValueError as exc:
        parser.error(str(exc))
    if check:
        print(json.dumps(settings_json(config)))
        raise SystemExit(0)
    return config


def settings_json(config: DaemonConfig) -> dict[str, object]:
    """The settings as `--check-settings` prints them: every field (an address is [host, port])."""
    return {f.name: _plain(getattr(config, f.name)) for f in fields(config)}


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, AgeBand):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, Path) else value


def _config(values: Mapping[str, Any]) -> DaemonConfig:
    defaults = DaemonConfig()
    speed = float(values.get("speed", defaults.speed))
    if speed <= 0 or speed > 10_000:
        raise ValueError(f"--speed {speed}: must be above 0 and at most 10000")
    start = defaults.start
    if "start" in values:
        text = values["start"]
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"--start {text!r}: not an ISO time with an offset") from None
        if start.tzinfo is None:
            raise ValueError(f"--start {text!r}: give an offset, e.g. +08:00")
    uids = tuple(values.get("child_uid", ()))
    if any(uid <= 0 for uid in uids):
        raise ValueError(f"--child-uid {list(uids)}: the child is never root")
    try:
        band = AgeBand(values.get("band", defaults.band.value))
    except ValueError:
        raise ValueError(f"--band {values['band']!r}: not one of "
                         f"{', '.join(b.value for b in AgeBand)}") from None
    upstreams = tuple(values.get("dns_upstream", ()))
    upstreams_from = values.get("dns_upstreams_from")
    if upstreams and upstreams_from is not None:
        raise ValueError("--dns-upstream and --dns-upstreams-from: give the resolvers or the "
                         "file that names them, not both")
    listen = tuple(values.get("dns_listen", ())) or (DEFAULT_DNS_LISTEN,)
    _, loops = without_self(upstreams, listen)
    if loops:
        raise ValueError(f"--dns-upstream {', '.join(f'{h}:{p}' for h, p in loops)}: the DNS "
                         "filter's own address (it would forward to itself)")
    return DaemonConfig(
        policy=values.get("policy", defaults.policy),
        state=values.get("state", defaults.state),
        band=band,
        dev=bool(values.get("dev", False)),
        speed=speed,
        start=start.astimezone(UTC),
        child_uids_given=uids,
        exec_gate_marks=tuple(values.get("exec_gate_mark", ())),
        exec_gate_bases=tuple(values.get("exec_gate_base", ())),
        lockers=tuple(Path(p) for p in values.get("locker", ())),
        desktop_dirs=tuple(str(d) for d in values.get("desktop_dir", ())),
        dns_upstreams=upstreams,
        dns_upstreams_from=upstreams_from,
        dns_listen=tuple(values.get("dns_listen", ())),
        lists=values.get("lists"),
        bus_address=values.get("bus_address"),
        guardian_secret=values.get("guardian_secret"),
        dashboard=values.get("dashboard"),
        dashboard_ca=values.get("dashboard_ca"),
        pair_on_start=bool(values.get("pair_on_start", False)),
        usbguard=bool(values.get("usbguard", False)),
        watch_devices=bool(values.get("watch_devices", False)),
        boot_check=bool(values.get("boot_check", False)),
        log_level=values.get("log_level", defaults.log_level),
        log_file=values.get("log_file"),
    )
