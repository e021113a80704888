"""The installed apps: .desktop files (system and Flatpak exports) -> AppInfo.

Parsing `.desktop` text (`parse_desktop`) is pure and kept apart from walking the
filesystem (`scan`), which resolves each app's executable to a real path and hashes its
content so a copied or renamed binary is still recognised as that app.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.filter.names import normalize_domain

DEFAULT_DIRS: tuple[str, ...] = (
    "/usr/share/applications",
    "/usr/local/share/applications",
    "/var/lib/flatpak/exports/share/applications",
)
FLATPAK_APP_ROOT = "/var/lib/flatpak/app"
HASH_SIZE_CAP = 256 * 1024 * 1024  # larger files are not hashed (none of the apps' binaries)


class DesktopFileError(ValueError):
    """A .desktop file the catalogue cannot use; the message names the file and the problem."""


@dataclass(frozen=True)
class DesktopEntry:
    """The fields of a [Desktop Entry] group the agent uses."""

    app_id: str
    name: str
    exec_argv: tuple[str, ...]
    try_exec: str | None
    categories: frozenset[str]
    no_display: bool
    flatpak_id: str | None
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppInfo:
    """An installed app, as the core and the guardian's rules editor see it."""

    app_id: str
    name: str
    categories: frozenset[str]
    executables: tuple[str, ...]  # resolved real paths
    hashes: frozenset[str]  # sha256 hex of each executable's content
    prefixes: tuple[str, ...] = ()  # directories wholly owned by the app (Flatpak)
    needed_by_session: bool = False
    interpreters: tuple[str, ...] = ()  # `#!` interpreters its scripts need (resolved)
    tree_files: tuple[str, ...] = ()  # executables under `prefixes`, judged by inode
    domains: tuple[str, ...] = ()  # X-Minormode-Domains: names it needs to resolve (normalised)


def app_id_from_filename(filename: str) -> str:
    """The stable app ID is the desktop-file ID without `.desktop` (as GNOME and Flatpak use)."""
    if not filename.endswith(".desktop"):
        raise DesktopFileError(f"{filename}: not a .desktop file name")
    return filename[: -len(".desktop")]


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(
                {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(value[i + 1], value[i + 1])
            )
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_FIELD_CODES = frozenset("%" + c for c in "fFuUdDnNickvm")


def parse_exec(value: str, where: str) -> tuple[str, ...]:
    """Split an Exec= value and drop field codes (%f %U ...); the first word is the program."""
    try:
        words = shlex.split(_unescape(value))
    except ValueError as exc:
        raise DesktopFileError(f"{where}: Exec= cannot be parsed: {exc}") from None
    argv = tuple(w.replace("%%", "%") for w in words if w not in _FIELD_CODES)
    if not argv:
        raise DesktopFileError(f"{where}: Exec= is empty")
    return argv


def parse_desktop(text: str, filename: str) -> DesktopEntry | None:
    """Parse one .desktop file; None for entries that are not launchable applications."""
    app_id = app_id_from_filename(os.path.basename(filename))
    group: str | None = None
    fields: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise DesktopFileError(f"{filename}:{lineno}: malformed group header {line!r}")
            group = line[1:-1]
            continue
        if group != "Desktop Entry":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DesktopFileError(f"{filename}:{lineno}: expected key=value, got {line!r}")
        fields.setdefault(key.strip(), value.strip())
    if group is None and not fields:
        raise DesktopFileError(f"{filename}: no [Desktop Entry] group")
    if fields.get("Type", "Application") != "Application" or fields.get("Hidden") == "true":
        return None
    if "Exec" not in fields:
        return None
    name = fields.get("Name")
    if not name:
        raise DesktopFileError(f"{filename}: Name= is missing")
    argv = parse_exec(fields["Exec"], filename)
    flatpak_id = fields.get("X-Flatpak")
    return DesktopEntry(
        app_id=app_id,
        name=name,
        exec_argv=argv,
        try_exec=fields.get("TryExec") or None,
        categories=frozenset(c for c in fields.get("Categories", "").split(";") if c),
        no_display=fields.get("NoDisplay") == "true",
        flatpak_id=flatpak_id,
        domains=parse_domains(fields.get(DOMAINS_KEY, ""), filename),
    )


DOMAINS_KEY = "X-Minormode-Domains"
MAX_DOMAINS = 64


def parse_domains(value: str, where: str) -> tuple[str, ...]:
    """`X-Minormode-Domains=turn.calls.example;stun.calls.example;`: the names an app needs
    to resolve even in allowlist-only mode (a calls or emergency app's servers), added to
    the filter's allowed domains while the app may run. Only root-owned desktop files are
    catalogued (system and Flatpak exports), so the child cannot declare any."""
    names = [d.strip() for d in value.split(";") if d.strip()]
    if len(names) > MAX_DOMAINS:
        raise DesktopFileError(f"{where}: {DOMAINS_KEY}: {len(names)} names, at most {MAX_DOMAINS}")
    out = []
    for name in names:
        try:
            out.append(normalize_domain(name))
        except ValueError as exc:
            raise DesktopFileError(f"{where}: {DOMAINS_KEY}: {name!r}: {exc}") from None
    return tuple(dict.fromkeys(out))


def sha256_file(path: str, size_cap: int = HASH_SIZE_CAP) -> str | None:
    """Content hash, or None if the file is larger than `size_cap` or unreadable."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > size_cap:
                return None
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def parse_shebang(head: bytes) -> tuple[str, ...]:
    """The interpreter argv of a `#!` line ("" words dropped), or () for non-scripts."""
    if not head.startswith(b"#!"):
        return ()
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return tuple(line.split())


DEFAULT_SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


def script_chain(path: str, search_path: str = DEFAULT_SEARCH_PATH) -> tuple[str, ...]:
    """The programs the kernel execs after a script, in order, as real paths: its `#!`
    interpreter, and for `#!/usr/bin/env X` also X on PATH (env execs it). Empty for a
    non-script or an interpreter that cannot be found."""
    try:
        with open(path, "rb") as f:
            words = parse_shebang(f.read(256))
    except OSError:
        return ()
    if not words:
        return ()
    first = resolve_program(words[0], search_path)
    if first is None:
        return ()
    if os.path.basename(words[0]) == "env":
        rest = [w for w in words[1:] if not w.startswith("-")]
        then = resolve_program(rest[0], search_path) if rest else None
        return (first, then) if then else ()
    return (first,)


def script_interpreter(path: str, search_path: str) -> str | None:
    """The real path of the program that runs a script (`#!/usr/bin/env X` -> X on PATH)."""
    chain = script_chain(path, search_path)
    return chain[-1] if chain else None


def walk_executables(root: str) -> tuple[str, ...]:
    """Regular files with an exec bit under `root` (symlinks not followed). Inside a
    sandbox (Flatpak's bwrap) the gate sees such files under another mount namespace's
    paths, so they are judged by inode, not by path."""
    found: list[str] = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                found.append(path)
    return tuple(sorted(found))


def resolve_program(program: str, search_path: str) -> str | None:
    """The real path of an Exec= program (absolute, or looked up on `search_path`)."""
    found = program if os.path.isabs(program) else shutil.which(program, path=search_path)
    if found is None or not os.path.isfile(found):
        return None
    return os.path.realpath(found)


@dataclass
class ScanResult:
    apps: dict[str, AppInfo] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # one line per unusable file


def app_from_entry(
    entry: DesktopEntry,
    search_path: str,
    session_apps: frozenset[str] = frozenset(),
    flatpak_root: str = FLATPAK_APP_ROOT,
) -> AppInfo:
    """Resolve an entry's program and hash it. Flatpak apps own their whole app directory
    (the launcher `flatpak` itself is OS base, shared by every Flatpak app)."""
    executables: list[str] = []
    prefixes: list[str] = []
    tree_files: tuple[str, ...] = ()
    if entry.flatpak_id:
        prefix = os.path.join(flatpak_root, entry.flatpak_id) + "/"
        prefixes.append(prefix)
        tree_files = walk_executables(prefix)
    else:
        for program in (entry.exec_argv[0], entry.try_exec):
            if program:
                real = resolve_program(program, search_path)
                if real and real not in executables:
                    executables.append(real)
    hashes = frozenset(h for h in (sha256_file(p) for p in executables) if h)
    interpreters = tuple(
        dict.fromkeys(i for i in (script_interpreter(p, search_path) for p in executables) if i)
    )
    return AppInfo(
        app_id=entry.app_id,
        name=entry.name,
        categories=entry.categories,
        executables=tuple(executables),
        hashes=hashes,
        prefixes=tuple(prefixes),
        needed_by_session=entry.app_id in session_apps,
        interpreters=interpreters,
        tree_files=tree_files,
        domains=entry.domains,
    )


def scan(
    dirs: Iterable[str] = DEFAULT_DIRS,
    search_path: str = DEFAULT_SEARCH_PATH,
    session_apps: frozenset[str] = frozenset(),
    flatpak_root: str = FLATPAK_APP_ROOT,
) -> ScanResult:
    """Walk the desktop-file directories; the first directory naming an app ID wins."""
    result = ScanResult()
    for directory in dirs:
        base = Path(directory)
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.desktop")):
            try:
                text = path.read_text(encoding="utf-8")
                entry = parse_desktop(text, str(path))
            except (OSError, UnicodeDecodeError, DesktopFileError) as exc:
                result.errors.append(f"{path}: {exc}")
                continue
            if entry is None or entry.app_id in result.apps:
                continue
            result.apps[entry.app_id] = app_from_entry(entry, search_path, session_apps, flatpak_root)
    return result


def apps_by_executable(apps: Mapping[str, AppInfo]) -> dict[str, frozenset[str]]:
    """Real path -> the app IDs launching it (a shared launcher can belong to several)."""
    out: dict[str, set[str]] = {}
    for app in apps.values():
        for exe in app.executables:
            out.setdefault(exe, set()).add(app.app_id)
    return {k: frozenset(v) for k, v in out.items()}
