"""systemd units as a root file system configures them: masked (a symlink to /dev/null or
an empty file in /etc/systemd/system) and enabled (a link in some `*.wants/` or
`*.requires/` directory), and systemd's INI files with their drop-ins."""

from __future__ import annotations

from dataclasses import dataclass

from agent.lockdown.model import RootView

ETC_UNITS = "/etc/systemd/system"
UNIT_DIRS = (ETC_UNITS, "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def is_masked(view: RootView, unit: str) -> bool:
    path = f"{ETC_UNITS}/{unit}"
    return view.link_target(path) == "/dev/null" or view.read_text(path) == ""


def unit_stem(unit: str) -> str:
    """"getty@tty1.service" -> "getty", "ssh.socket" -> "ssh": the name without instance
    or type."""
    name, at, _rest = unit.partition("@")
    return name if at else unit.rpartition(".")[0] or unit


def template_of(unit: str) -> str | None:
    """"getty@tty1.service" -> "getty@.service"; None for a unit that is not an instance."""
    name, at, rest = unit.partition("@")
    if not at:
        return None
    return f"{name}@.{rest.rpartition('.')[2]}"


def is_masked_or_template_masked(view: RootView, unit: str) -> bool:
    template = template_of(unit)
    return is_masked(view, unit) or (template is not None and is_masked(view, template))


@dataclass(frozen=True)
class Enabled:
    unit: str
    link: str  # the wants/requires link that enables it


def enabled_units(view: RootView) -> tuple[Enabled, ...]:
    """Every unit some target wants or requires, with the link (once per link path)."""
    seen: dict[tuple[str, str], Enabled] = {}
    for units in UNIT_DIRS:
        for entry in view.list_dir(units):
            if not entry.endswith((".wants", ".requires")):
                continue
            for unit in view.list_dir(f"{units}/{entry}"):
                seen.setdefault((entry, unit), Enabled(unit, f"{units}/{entry}/{unit}"))
    return tuple(seen.values())


def ini_value(text: str, section: str, key: str) -> str | None:
    """The last `key=` in `[section]` of a systemd INI file (None: not set there)."""
    value = None
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line:
            name, _, given = line.partition("=")
            if name.strip() == key:
                value = given.strip()
    return value


def conf_files(view: RootView, dirs: tuple[str, ...], suffix: str = ".conf") -> tuple[str, ...]:
    """Every `*.conf` (or `suffix`) in `dirs` in the order systemd reads them: by file name,
    a name in an earlier directory hiding the same name in a later one (drop-ins, sysctl.d,
    and polkit's rules.d the same way)."""
    chosen: dict[str, str] = {}
    for directory in dirs:
        for name in view.list_dir(directory):
            if name.endswith(suffix):
                chosen.setdefault(name, f"{directory}/{name}")
    return tuple(chosen[name] for name in sorted(chosen))


def drop_ins(view: RootView, main: str, dirs: tuple[str, ...]) -> tuple[str, ...]:
    """The files systemd reads for a configuration: `main`, then its drop-ins."""
    return (main, *conf_files(view, dirs))


def effective(view: RootView, files: tuple[str, ...], section: str, key: str) -> tuple[str | None, str]:
    """The value a key ends with across `files` (last one wins), and the file that set it
    (the main file when none did)."""
    value, where = None, files[0]
    for path in files:
        found = ini_value(view.read_text(path) or "", section, key)
        if found is not None:
            value, where = found, path
    return value, where
