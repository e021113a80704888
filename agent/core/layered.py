"""A settings file and its drop-in directory, layered: `agent.conf`, then every
`agent.conf.d/*.conf` in lexical order, a later file winning per key (systemd's and
logind.conf's rule, so a manufacturer's or an administrator's drop-in changes one key
without copying the rest).

Pure apart from the two readers it is given, so the daemon (the file system) and the
lockdown audit (a root file system in a directory) layer the same files the same way. Every
problem is collected, each naming its file, its line and its key (`Problem`, as the policy
parser reports them); a file that cannot be read or is not TOML is a problem, never skipped.
Only flat files: each top-level key is one setting (a table is a value the caller refuses).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agent.core.parse import MISSING, Problem, toml_key_lines

DROPIN_SUFFIX = ".conf"


@dataclass(frozen=True)
class Setting:
    """One key's value and where it was set (the file that won)."""

    value: object
    source: str
    line: int | None

    def problem(self, key: str, message: str) -> tuple[str, Problem]:
        return self.source, Problem(key, self.value, message, self.line)


class SettingsError(ValueError):
    """Settings that cannot be used; `problems` lists every (file, problem)."""

    def __init__(self, problems: Sequence[tuple[str, Problem]]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.render(source) for source, p in self.problems))


def dropin_dir(main: str) -> str:
    """`/etc/minormode/agent.conf` -> `/etc/minormode/agent.conf.d`."""
    return main + ".d"


def dropin_names(names: Sequence[str]) -> list[str]:
    """The drop-ins among a directory's entries, in the order they apply: `*.conf`, not
    hidden (an editor's `.x.conf.swp` or a package manager's `x.conf.dpkg-old` never
    counts), sorted by name as bytes."""
    chosen = [n for n in names if n.endswith(DROPIN_SUFFIX) and not n.startswith(".")]
    return sorted(chosen, key=lambda n: n.encode())


def layered_files(main: str, list_dir: Callable[[str], Sequence[str]]) -> list[str]:
    """The main file, then its drop-ins. No drop-in directory (`list_dir` raises
    FileNotFoundError) is none; one that cannot be listed is a SettingsError naming it."""
    directory = dropin_dir(main)
    try:
        names = list_dir(directory)
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise SettingsError([(directory, Problem("", MISSING, "cannot list the drop-in directory: "
                                                 f"{exc.strerror or exc}"))]) from exc
    return [main, *(f"{directory}/{n}" for n in dropin_names(names))]


def parse_settings_text(raw: bytes, source: str) -> tuple[dict[str, Setting], list[tuple[str, Problem]]]:
    """One file's top-level keys with their lines, or the problem that stops it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [(source, Problem("", MISSING, f"not UTF-8 ({exc.reason})"))]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        return {}, [(source, Problem("", MISSING, f"not valid TOML: {exc}", int(m[1]) if m else None))]
    lines = toml_key_lines(text)
    return {key: Setting(value, source, lines.get((key,))) for key, value in data.items()}, []


def read_layers(files: Sequence[str], read: Callable[[str], bytes]) -> list[dict[str, Setting]]:
    """Every file's keys in the order they apply (a later one wins per key: `merged`), all
    of them, so that a value a later file overrides is still checked; SettingsError naming
    every file that cannot be read or parsed (`read` raises OSError)."""
    layers: list[dict[str, Setting]] = []
    problems: list[tuple[str, Problem]] = []
    for source in files:
        try:
            raw = read(source)
        except OSError as exc:
            problems.append((source, Problem("", MISSING, f"cannot read: {exc.strerror or exc}")))
            continue
        settings, found = parse_settings_text(raw, source)
        problems += found
        layers.append(settings)
    if problems:
        raise SettingsError(problems)
    return layers


def merged(layers: Sequence[Mapping[str, Setting]]) -> dict[str, Setting]:
    """Each key as the last file to set it has it."""
    out: dict[str, Setting] = {}
    for settings in layers:
        out.update(settings)
    return out
