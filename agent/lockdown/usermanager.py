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


def manager_environment(view: RootView, files: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The `Environment=` a unit ends with across `files`: assignments accumulate, an empty
    `Environment=` clears them (systemd.exec(5)). Each value with the file that set it."""
    env: dict[str, tuple[str, str]] = {}
    for path in files:
        section = None
        for raw in (view.read_text(path) or "").splitlines():
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            name, sep, value = line.partition("=")
            if section == "Service" and sep and name.strip() == "Environment":
                value = value.strip()
                if not value:
                    env.clear()
                    continue
                try:
                    words = shlex.split(value)
                except ValueError:
                    continue  # systemd ignores a line it cannot parse
                for word in words:
                    key, sep, given = word.partition("=")
                    if sep:
                        env[key] = (given, path)
    return env


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
    env = manager_environment(view, files)
    out = []
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


def environment_d(view: RootView, _ctx: Context) -> Sequence[Finding]:
    if not any(view.exists(f"{d}/{ENV_GENERATOR}") for d in ENV_GENERATOR_DIRS):
        return []  # no generator: nothing reads environment.d
    target = view.link_target(ENV_GENERATOR_MASK)
    if target == "/dev/null" or view.read_bytes(ENV_GENERATOR_MASK) == b"":
        return []
    return [Finding("home.environment-d", "the child's user manager takes its environment from "
                    "~/.config/environment.d (PYTHONPATH, BASH_ENV ... for every app it starts)",
                    ENV_GENERATOR_MASK, f"ln -sfn /dev/null {ENV_GENERATOR_MASK}: {INSTALLER}")]
