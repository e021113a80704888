"""Every unit in systemd/ passes `systemd-analyze verify` with no warning.

PID 1 here is not systemd, so the system units are verified offline against a root
directory (--root) holding the host's stock units, the image's install paths and stub
executables; the user unit (--root is not supported for --user on systemd 252) is verified
with its /opt/minormode paths re-rooted into that directory. `verify` exits 0 on an unknown
key or a bad value, so any output at all counts as a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNITS = REPO / "systemd"
SYSTEM_UNITS = sorted(UNITS.glob("*.service"))
USER_UNITS = sorted((UNITS / "user").glob("*.service"))
# the test variant's unit (tests/qemu): verified too, since a broken one hangs the QEMU test
GUEST_UNITS = sorted((REPO / "tests/qemu/guest").glob("*.service"))
INSTALL_PREFIX = "/opt/minormode"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (Debian package systemd)")


def _exec_paths(unit: Path) -> set[str]:
    """Absolute program paths named by Exec*= lines (after systemd's prefixes like - @ + !)."""
    paths = set()
    for line in unit.read_text().splitlines():
        m = re.match(r"\s*Exec\w+=\s*[-@:+!]*(/\S+)", line)
        if m:
            paths.add(m.group(1))
    return paths


def _make_root(root: Path, system_units: list[Path], user_units: list[Path]) -> Path:
    """A root directory the units can be verified in: stock units, stubs for our programs."""
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")
    libexec = UNITS / "libexec"
    for unit in [*system_units, *user_units]:
        for prog in _exec_paths(unit):
            target = root / prog.lstrip("/")
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shipped = libexec / Path(prog).name
            if prog.startswith(f"{INSTALL_PREFIX}/libexec/") and shipped.exists():
                shutil.copy2(shipped, target)  # the real script, with its mode as shipped
            elif prog.startswith(INSTALL_PREFIX):
                target.write_text("#!/bin/sh\n")
                target.chmod(0o755)
            else:
                host = Path(prog)
                if not host.exists():
                    host = Path("/usr/bin") / host.name
                shutil.copy2(host, target)
    for unit in system_units:
        shutil.copy2(unit, root / "usr/lib/systemd/system" / unit.name)
    return root


def _verify(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # --man=no: the Documentation= man page is the package's, not this machine's;
    # tests/packaging checks that the package installs every page a unit names
    return subprocess.run(["systemd-analyze", *args, "--man=no"], capture_output=True, text=True, timeout=60,
                          env=env, check=False)


def verify_system_units(root: Path, units: list[Path]) -> str:
    """Problems `systemd-analyze verify` reports for system units ('' when clean)."""
    _make_root(root, units, [])
    r = _verify(["verify", f"--root={root}", *(f"/usr/lib/systemd/system/{u.name}" for u in units)])
    return (r.stdout + r.stderr).strip() or ("" if r.returncode == 0 else f"exit {r.returncode}")


def verify_user_units(root: Path, units: list[Path]) -> str:
    _make_root(root, [], units)
    copies = root / "user-units"
    copies.mkdir()
    for unit in units:
        text = unit.read_text().replace(INSTALL_PREFIX, f"{root}{INSTALL_PREFIX}")
        (copies / unit.name).write_text(text)
    runtime = root / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    r = _verify(["--user", "verify", *(str(copies / u.name) for u in units)], env)
    return (r.stdout + r.stderr).strip() or ("" if r.returncode == 0 else f"exit {r.returncode}")


def test_the_expected_units_exist() -> None:
    names = {u.name for u in SYSTEM_UNITS} | {u.name for u in USER_UNITS}
    assert {"minormode-agent.service", "minormode-lockdown.service",
            "minormode-firstboot.service", "minormode-session-helper.service"} <= names


def test_system_units_verify_clean(tmp_path: Path) -> None:
    assert verify_system_units(tmp_path, [*SYSTEM_UNITS, *GUEST_UNITS]) == ""


def test_user_units_verify_clean(tmp_path: Path) -> None:
    assert verify_user_units(tmp_path, USER_UNITS) == ""


@pytest.mark.parametrize(("old", "new"), [
    ("Type=notify", "Type=notifyy"),            # a bad value: verify only warns
    ("WatchdogSec=30s", "WatchdogSek=30s"),     # an unknown key: verify only warns
    ("ExecStart=/opt/minormode/venv/bin/python", "ExecStart=/opt/minormode/nosuch/python"),
])
def test_a_broken_agent_unit_is_caught(tmp_path: Path, old: str, new: str) -> None:
    agent = UNITS / "minormode-agent.service"
    text = agent.read_text()
    assert old in text
    broken = tmp_path / "src" / agent.name
    broken.parent.mkdir()
    broken.write_text(text.replace(old, new))
    root = tmp_path / "root"
    # the stub tree is made from the intact unit, so a renamed program is really missing
    _make_root(root, [agent], [])
    shutil.copy2(broken, root / "usr/lib/systemd/system" / agent.name)
    r = _verify(["verify", f"--root={root}", f"/usr/lib/systemd/system/{agent.name}"])
    assert (r.stdout + r.stderr).strip() != "" or r.returncode != 0


def test_a_broken_user_unit_is_caught(tmp_path: Path) -> None:
    helper = UNITS / "user" / "minormode-session-helper.service"
    broken = tmp_path / "src" / helper.name
    broken.parent.mkdir()
    broken.write_text(helper.read_text().replace("Restart=always", "Restart=sometimes"))
    assert verify_user_units(tmp_path / "root", [broken]) != ""


def test_units_named_by_our_units_exist() -> None:
    """verify does not check OnFailure=/Before= targets; our own minormode-* names must exist."""
    shipped = {u.name for u in [*SYSTEM_UNITS, *USER_UNITS, *GUEST_UNITS]}
    for unit in [*SYSTEM_UNITS, *USER_UNITS, *GUEST_UNITS]:
        named = set(re.findall(r"minormode-[\w-]+\.(?:service|target|timer)", unit.read_text()))
        assert named <= shipped, f"{unit.name} names units that do not exist: {named - shipped}"


def test_agent_unit_promises() -> None:
    """The properties the issue asks for, so a later edit cannot drop one silently."""
    text = (UNITS / "minormode-agent.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z]\w+=", line)
    )
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "always"
    assert settings["RestartSec"] == "0"
    assert settings["StartLimitIntervalSec"] == "0"
    assert settings["StateDirectory"] == "minormode"
    assert settings["StateDirectoryMode"] == "0700"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["OnFailure"] == "minormode-lockdown.service"
    assert int(settings["WatchdogSec"].removesuffix("s")) > 10  # the agent ticks every <= 5 s
    caps = set(settings["CapabilityBoundingSet"].split())
    assert caps == {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_KILL",
                    "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}
    firstboot = (UNITS / "minormode-firstboot.service").read_text()
    assert "ConditionFirstBoot=yes" in firstboot
    assert "Before=minormode-agent.service" in firstboot
