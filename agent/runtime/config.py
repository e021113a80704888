"""The daemon's settings: one typed, frozen `DaemonConfig`, from the command line and an
optional settings file.

The device image passes its settings on the command line today (systemd's
`$MINORMODE_AGENT_OPTIONS` from /etc/minormode/agent.env). `--config FILE` reads the same
settings from a TOML file instead, one key per long option (`child_uid = [1000]`,
`exec_gate_mark = ["/"]`, `dns_upstream = ["192.168.1.1:53"]`, `speed = 600.0`); an
option given on the command line wins over the file. A bad value, from either place,
exits 2 naming the option (and the file) and starts nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.core.policy import AgeBand
from agent.core.tomlfile import load_toml

DEFAULT_CHILD_UID = 1000
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
    dns_upstreams: tuple[Address, ...] = ()
    dns_listen: tuple[Address, ...] = ()
    lists: Path | None = None
    bus_address: str | None = None  # None: the system bus; "none": no D-Bus
    guardian_secret: Path | None = None
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
    def lists_dir(self) -> Path:
        return self.lists or self.state / "lists"


def address(text: str) -> Address:
    """"IP:PORT" or "[IPv6]:PORT"."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected IP:PORT, e.g. 127.0.0.1:53")
    return host.strip("[]"), int(port)


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
    p.add_argument("--config", type=Path, help="settings file (TOML, one key per long option)")
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
    p.add_argument("--dns-upstream", type=address, action="append", metavar="IP:PORT",
                   help="resolver the DNS filter forwards to (repeatable; without it the filter is off)")
    p.add_argument("--dns-listen", type=address, action="append", metavar="IP:PORT",
                   help="where the DNS filter listens (default 127.0.0.1:53)")
    p.add_argument("--lists", type=Path, help="compiled domain lists (default STATE/lists)")
    p.add_argument("--bus-address",
                   help="D-Bus for logind and the agent's services (default: the system bus; "
                        "\"none\" runs without D-Bus)")
    p.add_argument("--guardian-secret", type=Path,
                   help="file with the secret shared at pairing, for offline guardian codes")
    p.add_argument("--log-level", help="default INFO")
    p.add_argument("--log-file", type=Path, help="log here instead of standard error")
    return p


# Settings-file keys: how each value is read (a list for repeatable options).
_SCALAR: dict[str, Callable[[str], Any]] = {
    "policy": Path, "state": Path, "band": str, "start": str, "lists": Path,
    "bus_address": str, "guardian_secret": Path, "log_level": str, "log_file": Path,
}
_REPEATED: dict[str, Callable[[str], Any]] = {
    "exec_gate_mark": str, "exec_gate_base": base_path, "dns_upstream": address, "dns_listen": address,
}


def _from_file(path: Path) -> dict[str, Any]:
    """The settings file as argparse would have parsed the same options."""
    data = load_toml(path, "settings")  # a TomlFileError is a ValueError
    out: dict[str, Any] = {}
    for key, value in data.items():
        try:
            out[key] = _setting(key, value)
        except (argparse.ArgumentTypeError, TypeError) as exc:
            raise ValueError(f"{path}: {key}: {exc}") from exc
    try:
        _config(out)  # checked alone first, so a bad value is named with the file
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
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
    if key == "dev":
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if key == "speed":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    known = sorted([*_SCALAR, *_REPEATED, "child_uid", "dev", "speed"])
    raise TypeError(f"unknown setting (known: {', '.join(known)})")


def parse_config(argv: Sequence[str] | None = None) -> DaemonConfig:
    """The command line (and its --config file) as a DaemonConfig; exits 2 on bad input."""
    parser = _parser()
    given: dict[str, Any] = vars(parser.parse_args(argv))
    settings: Mapping[str, Any] = {}
    if "config" in given:
        try:
            settings = _from_file(given["config"])
        except ValueError as exc:
            parser.error(f"--config {exc}")
    try:
        return _config({**settings, **given})
    except ValueError as exc:
        parser.error(str(exc))


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
        dns_upstreams=tuple(values.get("dns_upstream", ())),
        dns_listen=tuple(values.get("dns_listen", ())),
        lists=values.get("lists"),
        bus_address=values.get("bus_address"),
        guardian_secret=values.get("guardian_secret"),
        log_level=values.get("log_level", defaults.log_level),
        log_file=values.get("log_file"),
    )
