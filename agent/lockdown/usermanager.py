"""The child's user manager (systemd --user) reads nothing the child wrote: no unit or
drop-in from the home (~/.config/systemd/user, ~/.local/share/systemd/user: the search
path is set without them), no environment from ~/.config/environment.d (its generator
masked), and Python apps skip the child's user site-packages. Those files are how a child
steers an allowed interpreter (PYTHONPATH, BASH_ENV, a `.pth` file) or starts a program of
its choosing at login, around the exec gate's verdicts (issue 16, item 1)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from agent.lockdown.model import Context, Finding, RootView
from agent.lockdown.units import ETC_UNITS, UNIT_DIRS, conf_files

TEMPLATE = "user@.service"
DROP_IN = f"{ETC_UNITS}/{TEMPLATE}.d/60-minormode-no-home-units.conf"
ENV_GENERATOR = "30-systemd-environment-d-generator"
ENV_GENERATOR_DIRS = ("/usr/lib/systemd/user-environment-generators",
                      "/lib/systemd/user-environment-generators")
ENV_GENERATOR_MASK = f"/etc/systemd/user-environment-generators/{ENV_GENERATOR}"
# What names the child's home in a search path: the directories, systemd's specifiers for
# them (%h home, %u/%U the user, %E/%S/%C XDG config, state and cache homes), variables.
HOME_MARKERS = ("/home/", "%h", "%u", "%U", "%E", "%S", "%C", "~", "$", "XDG_")
# Where the child can write (a home's markers above, and these): an EnvironmentFile= there
# is the child's to fill.
CHILD_WRITABLE = ("/run/user/", "/tmp/", "/var/tmp/", "/dev/shm/")
INSTALLER = "config/lockdown/install.sh"
FIX = f"{INSTALLER} (etc/systemd/system/user@.service.d)"


def _unit_files(view: RootView, ctx: Context) -> tuple[str, ...]:
    """user@.service and the drop-ins every child's instance reads (the template's and
    user@UID.service.d), in the order systemd applies them."""
    main = next((f"{d}/{TEMPLATE}" for d in UNIT_DIRS if view.exists(f"{d}/{TEMPLATE}")),
                f"/usr/lib/systemd/system/{TEMPLATE}")
    dirs = [f"{d}/user@{c.uid}.service.d" for d in UNIT_DIRS for c in ctx.children]
    dirs += [f"{d}/{TEMPLATE}.d" for d in UNIT_DIRS]
    return (main, *conf_files(view, tuple(dirs)))


Located = tuple[str, str]  # a value and the file that set it


def manager_environment(view: RootView, files: Sequence[str]) -> tuple[dict[str, Located], list[Located]]:
    """The environment a unit ends with across `files`, each value with the file that set
    it: `Environment=` assignments accumulate and an empty one clears them
    (systemd.exec(5)); `UnsetEnvironment=` removes names. Also every `EnvironmentFile=`
    (path, the file naming it): what such a file says overrides `Environment=`."""
    env: dict[str, Located] = {}
    unset: set[str] = set()
    env_files: list[Located] = []
    for path in files:
        section = None
        for raw in (view.read_text(path) or "").splitlines():
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            name, sep, value = line.partition("=")
            name, value = name.strip(), value.strip()
            if section != "Service" or not sep:
                continue
            if name == "EnvironmentFile":
                if value:
                    env_files.append((value.lstrip("-"), path))
                else:
                    env_files.clear()
                continue
            if name not in ("Environment", "UnsetEnvironment"):
                continue
            if not value:
                (env if name == "Environment" else unset).clear()
                continue
            try:
                words = shlex.split(value)
            except ValueError:
                continue  # systemd ignores a line it cannot parse
            for word in words:
                key, eq, given = word.partition("=")
                if name == "UnsetEnvironment":
                    unset.add(key)
                elif eq:
                    env[key] = (given, path)
    return {k: v for k, v in env.items() if k not in unset}, env_files


def search_path_problem(value: str) -> str | None:
    """Why a SYSTEMD_UNIT_PATH lets the child's files in (None: it does not)."""
    if value.endswith(":") or value.startswith(":") or "::" in value:
        return "an empty entry appends systemd's default paths, the home's among them"
    for entry in value.split(":"):
        if any(marker in entry for marker in HOME_MARKERS):
            return f"{entry} is in the child's home"
    return None


def home_units(view: RootView, ctx: Context) -> Sequence[Finding]:
    files = _unit_files(view, ctx)
    env, env_files = manager_environment(view, files)
    out = []
    for named, where in env_files:  # its variables override Environment=: the child must not write it
        if any(marker in named for marker in HOME_MARKERS) or named.startswith(CHILD_WRITABLE):
            out.append(Finding(f"home.user-manager:EnvironmentFile:{named}",
                               f"the child's user manager reads variables from {named}, a file the child "
                               "writes", where, f"remove EnvironmentFile={named}"))
    value, where = env.get("SYSTEMD_UNIT_PATH", ("", files[-1]))
    why = "unset: the defaults read ~/.config/systemd/user and ~/.local/share/systemd/user" if not value \
        else search_path_problem(value)
    if why is not None:
        out.append(Finding("home.user-manager:SYSTEMD_UNIT_PATH",
                           f"the child's user manager loads units and drop-ins the child writes ({why})",
                           where if value else DROP_IN,
                           f"Environment=SYSTEMD_UNIT_PATH= with system directories only: {FIX}"))
    if not env.get("PYTHONNOUSERSITE", ("", ""))[0]:
        out.append(Finding("home.user-manager:PYTHONNOUSERSITE",
                           "Python apps of the child's session run .pth files and usercustomize from "
                           "~/.local/lib/python3*/site-packages", DROP_IN,
                           f"Environment=PYTHONNOUSERSITE=1: {FIX}"))
    return out


def _pam_stack(view: RootView, service: str, seen: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(file, line) of a PAM service's configuration with its `@include`s and
    `include`/`substack` lines followed (each file once)."""
    path = f"/etc/pam.d/{service}"
    if path in seen:
        return []
    out: list[tuple[str, str]] = []
    for raw in (view.read_text(path) or "").splitlines():
        words = raw.split("#", 1)[0].split()
        if words[:1] == ["@include"] and len(words) > 1:
            out += _pam_stack(view, words[1], seen | {path})
        elif len(words) > 2 and words[1] in ("include", "substack"):
            out += _pam_stack(view, words[2], seen | {path})
        elif words:
            out.append((path, " ".join(words)))
    return out


def environment_d(view: RootView, _ctx: Context) -> Sequence[Finding]:
    """No environment the child writes reaches its user manager or its login: environment.d
    through its generator, ~/.pam_environment through pam_env in any PAM service (the
    manager's, systemd-user, and every login's: a display manager's or greeter's stack sets
    the graphical session's environment the same way). pam_env reads the home's file only
    with user_readenv=1, off by default since Debian's PAM 1.4."""
    out = []
    services = ["systemd-user", *(name for name in view.list_dir("/etc/pam.d") if name != "systemd-user")]
    seen: set[str] = set()
    for service in services:
        for path, line in _pam_stack(view, service):
            if "pam_env.so" in line and "user_readenv=1" in line and path not in seen:
                seen.add(path)
                who = ("the child's user manager" if service == "systemd-user"
                       else f"a login through PAM's {service}")
                out.append(Finding("home.environment-d:pam_env",
                                   f"{who} takes variables from ~/.pam_environment (pam_env user_readenv=1)",
                                   path, "drop user_readenv=1"))
    if not any(view.exists(f"{d}/{ENV_GENERATOR}") for d in ENV_GENERATOR_DIRS):
        return out  # no generator: nothing reads environment.d
    target = view.link_target(ENV_GENERATOR_MASK)
    if target == "/dev/null" or view.read_bytes(ENV_GENERATOR_MASK) == b"":
        return out
    return [*out, Finding("home.environment-d", "the child's user manager takes its environment from "
                          "~/.config/environment.d (PYTHONPATH, BASH_ENV ... for every app it starts)",
                          ENV_GENERATOR_MASK, f"ln -sfn /dev/null {ENV_GENERATOR_MASK}: {INSTALLER}")]
