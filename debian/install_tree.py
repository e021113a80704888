"""Build and lay out the minormode binary package's files (called by debian/rules).

    install_tree.py build   --work DIR --arch DEB_ARCH --cc CC [--wheels DIR]
    install_tree.py install --work DIR --dest debian/minormode
    install_tree.py depends          # the Depends names (scripts/setup's install root)

Why a venv under /opt and not Debian's python3-* packages: the agent needs newer releases of
its dependencies than bookworm has (cryptography >= 47 for its HPKE, dbus-fast >= 2.44,
aiohttp 3.9+), so they travel with it as wheels, the way dh-virtualenv packages do. Unlike
dh-virtualenv this never runs the target's interpreter: the venv is laid out by hand
(pyvenv.cfg, bin/python -> /usr/bin/python3) and the wheels are unpacked with `installer`,
so one amd64 build machine makes the arm64 package too (the image's case); the wheels must
be the target's (`pip download --platform`, checked here by their tags).

`build` makes DIR/agent (the agent's own wheel, built from this tree offline with the build
environment's setuptools), DIR/wheels (the dependencies: copied from --wheels, or downloaded
for DEB_ARCH from PyPI when it is not given), the DNS filter's native library built with CC,
and the man page and bash completion generated from minormodectl's parser. `install` puts
everything in place under --dest. Both stop with a message naming the file at fault.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = "/opt/minormode/venv"
PYTHON = "python3.11"  # bookworm's; debian/control pins python3 (>= 3.11), (<< 3.12)
SITE = f"{VENV}/lib/{PYTHON}/site-packages"
# Debian architecture -> the wheel platform tags pip downloads and this accepts.
PLATFORMS = {
    "arm64": ("manylinux_2_36_aarch64", "manylinux2014_aarch64"),
    "amd64": ("manylinux_2_36_x86_64", "manylinux2014_x86_64"),
}
MACHINE = {"arm64": "aarch64", "amd64": "x86_64"}


class PackagingError(Exception):
    """A build input that cannot make the package (the message names it)."""


def _run(*cmd: str, **kwargs: object) -> None:
    subprocess.run(cmd, check=True, cwd=REPO, **kwargs)  # type: ignore[call-overload]


def wheel_fits(name: str, arch: str) -> bool:
    """True if the wheel file `name` runs on bookworm's CPython 3.11 on `arch`."""
    parts = name.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return False
    pythons, abis, platforms = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    python_ok = any(p in ("py3", "cp311") or (p.startswith("cp3") and "abi3" in abis) for p in pythons)
    abi_ok = any(a in ("none", "abi3", "cp311") for a in abis)
    platform_ok = any(p == "any" or p.endswith("_" + MACHINE[arch]) for p in platforms)
    return python_ok and abi_ok and platform_ok


def _dependency_wheels(wheels: Path, arch: str) -> list[Path]:
    """The dependency wheels in `wheels`, each checked to run on `arch` (else the error names it)."""
    if not wheels.is_dir():
        raise PackagingError(f"wheels {wheels}: no such directory")
    found = [w for w in sorted(wheels.glob("*.whl")) if not w.name.startswith("minormode-")]
    unfit = [w.name for w in found if not wheel_fits(w.name, arch)]
    if unfit:
        raise PackagingError(f"{wheels}: wheels that do not run on {arch} with CPython 3.11: "
                             + ", ".join(unfit))
    if not found:
        raise PackagingError(f"{wheels}: no dependency wheels")
    return found


def build(work: Path, arch: str, cc: str, wheels: Path | None) -> None:
    if arch not in PLATFORMS:
        raise PackagingError(f"architecture {arch}: the package is built for {', '.join(PLATFORMS)}")
    given = _dependency_wheels(wheels, arch) if wheels is not None else None  # before any work
    shutil.rmtree(work, ignore_errors=True)
    (work / "agent").mkdir(parents=True)
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(work / "agent"), ".")
    agent = _one_agent_wheel(work / "agent")
    deps = work / "wheels"
    deps.mkdir()
    if given is None:
        platform_args = [a for p in PLATFORMS[arch] for a in ("--platform", p)]
        _run(sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
             "--python-version", "3.11", "--implementation", "cp", *platform_args,
             "-d", str(deps), str(agent))
        for own in deps.glob("minormode-*.whl"):
            own.unlink()
        _dependency_wheels(deps, arch)
    else:
        for wheel in given:
            shutil.copy2(wheel, deps / wheel.name)
    _run(sys.executable, "-m", "agent.filter.fastpath", "build", "--cc", cc,
         "--out", str(work / "_mmdns.so"), stdout=subprocess.DEVNULL)
    for kind, out in (("man", "minormodectl.1"), ("bash", "minormodectl.bash")):
        with open(work / out, "w", encoding="utf-8") as f:
            _run(sys.executable, "-m", "agent.cli.manpage", kind, stdout=f)


def _one_agent_wheel(directory: Path) -> Path:
    found = sorted(directory.glob("minormode-*.whl"))
    if len(found) != 1:
        raise PackagingError(f"{directory}: expected one minormode wheel, found {len(found)}")
    return found[0]


def install_venv(work: Path, dest: Path) -> None:
    """The venv's skeleton as `python3 -m venv` would make it, then every wheel unpacked."""
    # imported here: `depends` runs under any python3 (scripts/setup), without `installer`
    from installer import install  # noqa: PLC0415
    from installer.destinations import SchemeDictionaryDestination  # noqa: PLC0415
    from installer.sources import WheelFile  # noqa: PLC0415

    venv = dest / VENV.lstrip("/")
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / PYTHON / "site-packages").mkdir(parents=True)
    (venv / "lib64").symlink_to("lib")
    (venv / "pyvenv.cfg").write_text(
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n", encoding="utf-8")
    (venv / "bin" / "python3").symlink_to("/usr/bin/python3")
    (venv / "bin" / "python").symlink_to("python3")
    (venv / "bin" / PYTHON).symlink_to("python3")
    destination = SchemeDictionaryDestination(
        {"purelib": SITE, "platlib": SITE, "scripts": f"{VENV}/bin", "data": VENV,
         "headers": f"{VENV}/include/site/{PYTHON}"},
        interpreter=f"{VENV}/bin/python", script_kind="posix", destdir=str(dest),
        bytecode_optimization_levels=(),  # no .pyc in the package: postinst compiles them
    )
    for wheel in [_one_agent_wheel(work / "agent"), *sorted((work / "wheels").glob("*.whl"))]:
        with WheelFile.open(wheel) as source:
            install(source, destination, additional_metadata={"INSTALLER": b"minormode-deb\n"})
    shutil.copy2(work / "_mmdns.so", dest / SITE.lstrip("/") / "agent" / "filter" / "_mmdns.so")
    # the wheels' data files (segno's man page) would be unreachable in the venv
    shutil.rmtree(venv / "share", ignore_errors=True)


def _copy(src: Path, dst: Path, mode: int = 0o644) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def _copy_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            _copy(path, dst / path.relative_to(src), 0o755 if os.access(path, os.X_OK) else 0o644)


def install_files(work: Path, dest: Path) -> None:
    """Units, D-Bus, polkit, settings, lockdown, man page, completion: each where Debian looks."""
    opt = dest / "opt/minormode"
    for script in sorted((opt / "venv/bin").glob("minormode*")):
        (opt / "bin").mkdir(parents=True, exist_ok=True)
        (opt / "bin" / script.name).symlink_to(f"../venv/bin/{script.name}")
    (dest / "usr/bin").mkdir(parents=True)
    (dest / "usr/bin/minormodectl").symlink_to("/opt/minormode/bin/minormodectl")
    for helper in sorted((REPO / "systemd/libexec").iterdir()):
        _copy(helper, opt / "libexec" / helper.name, 0o755)
    # bookworm's debhelper enables only units under /lib (/usr/lib in trixie); with the merged
    # /usr every bookworm system has, both name the same directory
    system = dest / "lib/systemd/system"
    for unit in sorted((REPO / "systemd").glob("*.service")):
        _copy(unit, system / unit.name)
    for dropins in sorted(p for p in (REPO / "systemd").glob("*.d") if p.is_dir()):
        for conf in sorted(dropins.glob("*.conf")):
            _copy(conf, system / dropins.name / conf.name)
    for unit in sorted((REPO / "systemd/user").glob("*.service")):
        _copy(unit, dest / "usr/lib/systemd/user" / unit.name)
    for conf in sorted((REPO / "config/sysctl.d").glob("*.conf")):
        _copy(conf, dest / "etc/sysctl.d" / conf.name)
    for conf in sorted((REPO / "config/dbus").glob("*.conf")):
        _copy(conf, dest / "usr/share/dbus-1/system.d" / conf.name)
    for xml in sorted((REPO / "config/dbus").glob("*.xml")):
        _copy(xml, dest / "usr/share/dbus-1/interfaces" / xml.name)
    for action in sorted((REPO / "config/polkit").glob("*.policy")):
        _copy(action, dest / "usr/share/polkit-1/actions" / action.name)
    _copy(REPO / "config/udisks2/mount_options.conf", dest / "etc/udisks2/mount_options.conf")
    _copy(REPO / "config/agent.conf", dest / "etc/minormode/agent.conf")
    (dest / "etc/minormode/agent.conf.d").mkdir(parents=True)
    # the list publishers' keys the tablet trusts (agent/filter/bundles.py): root's, empty
    # until the manufacturer's image adds its NAME.pub (image-build's overlay)
    (dest / "etc/minormode/list-keys").mkdir(parents=True)
    for policy in sorted((REPO / "config/policies").glob("*.toml")):
        _copy(policy, dest / "usr/share/minormode/policies" / policy.name)
    _copy_tree(REPO / "config/lockdown", dest / "usr/share/minormode/lockdown")
    _copy(work / "minormodectl.1", dest / "usr/share/man/man1/minormodectl.1")
    _copy(work / "minormodectl.bash", dest / "usr/share/bash-completion/completions/minormodectl")


def depends(control: Path) -> list[str]:
    """The names in the binary package's Depends (no versions, no substitution variables):
    what a root needs before `dpkg -i` of the package succeeds in it."""
    text = control.read_text(encoding="utf-8")
    stanza = text.split("\nPackage: minormode\n", 1)
    field = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", stanza[-1], re.M) if len(stanza) == 2 else None
    if field is None:
        raise PackagingError(f"{control}: no Depends field in the minormode stanza")
    names = {re.sub(r"\(.*?\)", "", d).strip() for d in field.group(1).replace("\n", " ").split(",")}
    return sorted(n for n in names if n and not n.startswith("$"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="debian/install_tree.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    b = sub.add_parser("build", help="the wheels, the native library, the man page and completion")
    b.add_argument("--work", type=Path, required=True)
    b.add_argument("--arch", required=True, help="the Debian architecture (DEB_HOST_ARCH)")
    b.add_argument("--cc", required=True, help="the target's C compiler")
    b.add_argument("--wheels", type=Path, help="the dependencies' wheels (default: download them)")
    i = sub.add_parser("install", help="lay the package's files out under --dest")
    i.add_argument("--work", type=Path, required=True)
    i.add_argument("--dest", type=Path, required=True)
    sub.add_parser("depends", help="print the package's Depends names, comma-separated")
    args = parser.parse_args(argv)
    try:
        if args.step == "depends":
            print(",".join(depends(REPO / "debian" / "control")))
        elif args.step == "build":
            build(args.work, args.arch, args.cc, args.wheels)
        else:
            install_venv(args.work, args.dest)
            install_files(args.work, args.dest)
    except (PackagingError, FileNotFoundError, FileExistsError, subprocess.CalledProcessError) as e:
        print(f"install_tree.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
