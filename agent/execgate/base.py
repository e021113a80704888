"""The child's OS base: programs the gate lets the child run whatever the policy says.

A program in the base is one the child can also start by itself (from a `.desktop` file
or a unit it writes), with arguments of its choosing. So the base must hold no program
that runs code it is handed (shells, `env` and other launchers, interpreters), creates
namespaces or mounts (a file system mounted after the gate started is not marked: an exec
from it is never seen), or gains privileges (set-uid, set-gid, file capabilities). The
dynamic loaders are never base: they run only as a dynamic program's step (README.md).
`base_problems` names each offending file and why; AppGuard refuses to start with any,
as the runtime config refuses a base path that does not exist.

Two launchers are base on the image because the session cannot start without them, and
are named here so the list stays honest: the user manager (`systemd --user`, started by
`user@.service`) and the session bus (`dbus-daemon`). Both run what their unit and
service files say; the files in the child's home that steer them are the image's to lock
(README.md, "Environment and configuration the child could steer").
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection, Iterable

from agent.execgate.catalogue import DEFAULT_SEARCH_PATH, sha256_file

# By file name (basename, versions stripped): what each kind lets the child do.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "csh", "tcsh", "rbash",
                    "busybox", "toybox", "ash", "yash", "elvish", "nu", "xonsh"})
INTERPRETERS = re.compile(r"^(python|pypy|perl|ruby|irb|node|nodejs|deno|bun|lua|luajit|tclsh|wish|"
                          r"php|guile|gawk|mawk|nawk|awk|expect|osascript|java|jshell|Rscript|R|julia|"
                          r"gdb|lldb|strace|ltrace|vim?|nvim|emacs|nano|ed|less|more|man|script)"
                          r"[0-9.]*$")
LAUNCHERS = frozenset({"env", "nohup", "setsid", "nice", "ionice", "timeout", "stdbuf", "chrt",
                       "taskset", "xargs", "find", "flock", "watch", "systemd-run", "systemctl",
                       "busctl", "gdbus", "dbus-send", "dbus-run-session", "xdg-open", "gio",
                       "run-parts", "start-stop-daemon", "sudo", "su", "pkexec", "doas", "runuser",
                       "setpriv", "capsh", "chroot", "prlimit", "make", "git", "ssh", "tar", "rsync"})
NAMESPACES = frozenset({"unshare", "nsenter", "bwrap", "firejail", "newuidmap", "newgidmap",
                        "systemd-nspawn", "lxc-usernsexec", "podman", "docker", "runc", "crun",
                        "flatpak-spawn", "ip"})
MOUNTS = frozenset({"mount", "umount", "fusermount", "fusermount3", "udisksctl", "ntfs-3g",
                    "sshfs", "mount.fuse", "mount.fuse3", "squashfuse", "fuse-overlayfs",
                    "bindfs", "archivemount", "guestmount", "systemd-mount"})
# Needed by every session, with the residual they carry (module docstring).
SESSION_LAUNCHERS = frozenset({"systemd", "dbus-daemon", "dbus-broker-launch"})


def is_loader_name(path: str) -> bool:
    """A file named like a dynamic loader (glibc's ld-linux*.so*, ld.so, musl's ld-musl)."""
    name = os.path.basename(path)
    return name.startswith(("ld-linux", "ld-musl-")) or name in ("ld.so", "ld64.so.1", "ld64.so.2")


def _name(path: str) -> str:
    return os.path.basename(path)


def kind_of(path: str) -> str | None:
    """Why the file named `path` may not be base, by its name alone (None: no objection)."""
    name = _name(path)
    if name in SESSION_LAUNCHERS:
        return None
    if is_loader_name(path):
        return "the dynamic loader (runs any program it is given; allowed only as a step)"
    if name in SHELLS:
        return "a shell (runs any command line)"
    if INTERPRETERS.match(name):
        return "an interpreter or tool that runs code it is given"
    if name in LAUNCHERS:
        return "a launcher (runs a command line, sets its environment or privileges)"
    if name in NAMESPACES:
        return "creates namespaces (a mount in one is never marked)"
    if name in MOUNTS or name.startswith("mount."):
        return "mounts file systems (a late mount is never marked)"
    return None


def _privileged(st: os.stat_result, path: str) -> str | None:
    if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        return "set-uid or set-gid"
    try:
        os.getxattr(path, "security.capability")
    except OSError:
        return None
    return "has file capabilities"


def not_base_reason(path: str) -> str | None:
    """Why the file at `path` may not be base (by name, then set-uid/capabilities), or None."""
    why = kind_of(path)
    if why is not None:
        return why
    try:
        return _privileged(os.stat(path), path)
    except OSError:
        return None


def refused_programs(sizes: Collection[int], search_path: str = DEFAULT_SEARCH_PATH) -> dict[str, str]:
    """Content hash -> "a copy of PATH" for the installed programs `kind_of` refuses (on
    `search_path`) whose size is one of `sizes` (only those can be a base file's copy)."""
    found: dict[str, str] = {}
    for directory in dict.fromkeys(search_path.split(":")):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if kind_of(path) is None or is_loader_name(path):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            digest = sha256_file(path) if stat.S_ISREG(st.st_mode) and st.st_size in sizes else None
            if digest is not None:
                found.setdefault(digest, f"a copy of {os.path.realpath(path)}")
    return found


def base_problems(paths: Iterable[str], search_path: str = DEFAULT_SEARCH_PATH) -> list[str]:
    """One line per base file that must not be base ("PATH: why"); [] if none. Follows
    symlinks (a link named `helper` to /bin/bash is a shell) and compares content with
    the refused programs installed on `search_path` (a copy of bash named `helper`)."""
    problems = []
    unnamed: dict[str, tuple[str, os.stat_result]] = {}  # path -> (real path, stat)
    for path in paths:
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            problems.append(f"{path}: cannot be checked ({exc.strerror})")
            continue
        why = kind_of(path) or not_base_reason(real)
        if why is None:
            unnamed[path] = (real, st)
        else:
            problems.append(f"{_shown(path, real)}: {why}")
    if unnamed:
        copies = refused_programs({st.st_size for _real, st in unnamed.values()}, search_path)
        for path, (real, _st) in unnamed.items():
            digest = sha256_file(real)
            if digest in copies:
                problems.append(f"{_shown(path, real)}: {copies[digest]}")
    return problems


def _shown(path: str, real: str) -> str:
    return path if real == path else f"{path} (-> {real})"
