"""The Debian package (debian/, issue 19): built from a copy of the tree with
dpkg-buildpackage as a packager would, checked with lintian, inspected, then installed with
dpkg into a throw-away bookworm root (scripts/setup made it with mmdebstrap, holding only the
package's Depends) and purged from it again.

The build uses the dependency wheels scripts/setup downloaded for this machine's
architecture (MINORMODE_IMAGE_CACHE, default /var/cache/minormode-image), so nothing here
reaches a registry. The image build makes the arm64 package from the same debian/rules.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MINORMODE_IMAGE_CACHE", "/var/cache/minormode-image"))
ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                      check=True).stdout.strip()
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
SITE = "opt/minormode/venv/lib/python3.11/site-packages"

sys.path.insert(0, str(REPO / "debian"))
import install_tree  # noqa: E402  (debian/install_tree.py: not a package of the project)

pytestmark = pytest.mark.slow


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _cached(path: Path) -> Path:
    """A scripts/setup artefact: missing is a setup failure for root (CI), a skip otherwise."""
    if not path.exists():
        if os.geteuid() == 0:
            pytest.fail(f"{path} is missing: scripts/setup makes it (as root)")
        pytest.skip(f"{path} is missing: scripts/setup makes it when run as root")
    return path


def _tree_copy(dest: Path) -> None:
    """What a clean clone holds (tracked files, plus new ones not yet committed)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, listed):
        src = REPO / os.fsdecode(name)
        if src.is_file() and not src.is_symlink():
            (dest / src.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / src.relative_to(REPO))
    (dest / ".venv").symlink_to(REPO / ".venv")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = _cached(CACHE / f"host-wheels-{ARCH}-{_key((REPO / 'pyproject.toml').read_bytes())}")
    top = tmp_path_factory.mktemp("deb")
    src = top / "minormode"
    src.mkdir()
    _tree_copy(src)
    run = subprocess.run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, capture_output=True,
                         text=True, timeout=600, check=False,
                         env={**os.environ, "MINORMODE_WHEELS": str(wheels)})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return top / f"minormode_{VERSION}_{ARCH}.deb"


def _contents(deb: Path) -> dict[str, str]:
    """Path (no leading ./) -> the listing's line, for every entry in the package."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    out = {}
    for line in listing:
        path = line.split(None, 5)[5].split(" -> ")[0].removeprefix("./").rstrip("/")
        out[path] = line
    return out


def test_the_package_is_clean_of_lintian_errors(deb: Path) -> None:
    run = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)], capture_output=True,
                         text=True, timeout=600, check=False)
    tags = [line for line in run.stdout.splitlines() if re.match(r"^[EWIPXO]: ", line)]
    errors = [line for line in tags if line.startswith("E: ")]
    assert errors == [], "\n".join(errors)
    # the overrides are each used (a stale one would hide nothing and mean the tree changed)
    assert "unused-override" not in run.stdout, run.stdout


def test_the_package_carries_the_agent_its_units_and_its_interfaces(deb: Path) -> None:
    files = _contents(deb)
    wanted = [
        "opt/minormode/venv/pyvenv.cfg",
        "opt/minormode/venv/bin/python3",  # -> /usr/bin/python3: bookworm's interpreter
        "opt/minormode/venv/bin/minormode-agent",
        "opt/minormode/bin/minormodectl",
        f"{SITE}/agent/daemon.py",
        f"{SITE}/agent/filter/_mmdns.so",  # the DNS filter's native path
        f"{SITE}/agent/locale/zh_CN/LC_MESSAGES/minormode.mo",
        "opt/minormode/libexec/minormode-agent-stopped",
        "usr/bin/minormodectl",
        "lib/systemd/system/minormode-agent.service",
        "lib/systemd/system/minormode-agent.service.d/execgate.conf",
        "lib/systemd/system/minormode-firstboot.service",
        "lib/systemd/system/minormode-lockdown.service",
        "usr/lib/systemd/user/minormode-session-helper.service",
        "usr/share/dbus-1/system.d/org.minormode.Agent1.conf",
        "usr/share/dbus-1/system.d/org.minormode.Payments1.conf",
        "usr/share/dbus-1/interfaces/org.minormode.Agent1.xml",
        "usr/share/dbus-1/interfaces/org.minormode.Guardian1.xml",
        "usr/share/dbus-1/interfaces/org.minormode.Payments1.xml",
        "usr/share/polkit-1/actions/org.minormode.policy",
        "usr/share/man/man1/minormodectl.1.gz",
        "usr/share/bash-completion/completions/minormodectl",
        "usr/share/minormode/policies/8-12.toml",
        "usr/share/minormode/lockdown/install.sh",
        "usr/share/doc/minormode/copyright",
        "etc/minormode/agent.conf",
        "etc/minormode/list-keys",  # where the manufacturer's list key goes (root-owned)
        "etc/sysctl.d/60-minormode-exec.conf",
        "etc/udisks2/mount_options.conf",
    ]
    assert [w for w in wanted if w not in files] == []
    assert files["etc/minormode/list-keys"].startswith("drwxr-xr-x root/root")
    assert files["usr/bin/minormodectl"].endswith("-> /opt/minormode/bin/minormodectl")
    assert files["opt/minormode/venv/bin/python3"].endswith("-> /usr/bin/python3")
    assert files["opt/minormode/libexec/minormode-agent-stopped"].startswith("-rwxr-xr-x root/root")
    # bytecode is compiled on the device by postinst, never shipped from the build machine
    assert [p for p in files if p.endswith(".pyc") or "__pycache__" in p] == []
    # every dependency wheel is in the venv (its .dist-info), and nothing else is
    wheels = CACHE / f"host-wheels-{ARCH}-{_key((REPO / 'pyproject.toml').read_bytes())}"
    expected = {w.name.split("-")[0].lower() for w in wheels.glob("*.whl")} | {"minormode"}
    dist_infos = {p.split("/")[-1].split("-")[0].lower() for p in files
                  if p.startswith(SITE) and p.endswith(".dist-info") and p.count("/") == SITE.count("/") + 1}
    assert dist_infos == expected


def test_every_units_documentation_is_in_the_package(deb: Path, tmp_path: Path) -> None:
    """`systemctl help UNIT` opens what Documentation= names: each man page is installed."""
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    files = _contents(deb)
    units = sorted([*(tmp_path / "lib/systemd/system").glob("*.service"),
                    *(tmp_path / "usr/lib/systemd/user").glob("*.service")])
    assert len(units) == 4
    for unit in units:
        docs = [w for line in unit.read_text().splitlines() if line.startswith("Documentation=")
                for w in line.removeprefix("Documentation=").split()]
        assert docs, f"{unit.name}: no Documentation="
        for doc in docs:
            page = re.fullmatch(r"man:([\w.-]+)\((\d)\)", doc)
            if page:
                assert f"usr/share/man/man{page[2]}/{page[1]}.{page[2]}.gz" in files, (unit.name, doc)
            else:
                assert doc.startswith("file:/") and doc.removeprefix("file:/").rstrip("/") in files, doc


def test_the_package_metadata_matches_the_tree(deb: Path) -> None:
    fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                            check=True).stdout
    assert re.search(rf"^Version: {re.escape(VERSION)}$", fields, re.M), fields
    depends = re.search(r"^Depends: (.*)$", fields, re.M)
    assert depends is not None
    # the venv runs bookworm's 3.11: an interpreter of another minor version cannot load it
    assert "python3 (>= 3.11)" in depends.group(1) and "python3 (<< 3.12)" in depends.group(1)
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True,
                               check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(conffiles)) as tar:
        member = tar.extractfile("./conffiles")
        assert member is not None
        listed = member.read().decode().split()
    assert {"/etc/minormode/agent.conf", "/etc/sysctl.d/60-minormode-exec.conf",
            "/etc/udisks2/mount_options.conf"} <= set(listed)


@pytest.mark.parametrize(("wheel", "arch", "fits"), [
    ("aiohttp-3.13.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "arm64", True),
    ("aiohttp-3.13.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "amd64", False),
    ("cryptography-47.0.0-cp311-abi3-manylinux_2_34_x86_64.whl", "amd64", True),
    ("cryptography-47.0.0-cp311-abi3-manylinux_2_34_x86_64.whl", "arm64", False),
    ("segno-1.6.6-py3-none-any.whl", "arm64", True),
    ("frozenlist-1.8.0-cp312-cp312-manylinux_2_17_aarch64.whl", "arm64", False),  # Python 3.12
    ("broken.whl", "arm64", False),
])
def test_only_wheels_of_the_target_go_into_the_package(wheel: str, arch: str, fits: bool) -> None:
    assert install_tree.wheel_fits(wheel, arch) is fits


def test_a_wheelhouse_for_another_architecture_stops_the_build(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "multidict-6.7.0-cp311-cp311-manylinux_2_17_aarch64.whl").write_bytes(b"")
    with pytest.raises(install_tree.PackagingError, match=r"do not run on amd64.*multidict"):
        install_tree.build(tmp_path / "work", "amd64", "cc", wheels)
    assert not (tmp_path / "work").exists()  # refused before anything was made
    with pytest.raises(install_tree.PackagingError, match=r"no such directory"):
        install_tree.build(tmp_path / "work", "amd64", "cc", tmp_path / "nowhere")
    with pytest.raises(install_tree.PackagingError, match=r"architecture armhf"):
        install_tree.build(tmp_path / "work", "armhf", "cc", wheels)


def test_the_depends_names_are_read_from_the_control_file(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.write_text("Source: x\nDepends: nope\n\nPackage: minormode\nArchitecture: any\n"
                       "Depends: python3 (>= 3.11), python3 (<< 3.12),\n dbus, ${misc:Depends}\n"
                       "Description: d\n")
    assert install_tree.depends(control) == ["dbus", "python3"]
    control.write_text("Source: x\n\nPackage: other\n")
    with pytest.raises(install_tree.PackagingError, match="no Depends field"):
        install_tree.depends(control)


# ---- installed into a throw-away root --------------------------------------------------------


@pytest.fixture(scope="module")
def installed(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: dpkg -i inside a chroot")
    depends = ",".join(install_tree.depends(REPO / "debian/control"))
    tar = _cached(CACHE / f"package-root-{ARCH}-{_key((depends + chr(10)).encode())}.tar")
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["tar", "-xpf", str(tar), "-C", str(root), "--numeric-owner"], check=True)
    shutil.copy2(deb, root / "root" / deb.name)
    run = in_root(root, "dpkg", "-i", f"/root/{deb.name}")
    assert run.returncode == 0, run.stdout + run.stderr
    yield root
    shutil.rmtree(root, ignore_errors=True)


def in_root(root: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """`cmd` chrooted into `root`, in a mount namespace of its own (proc, dev, tmp vanish
    with it; the host's mount table is never touched), with a clean environment."""
    script = ('root=$1; shift; mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" '
              '&& mount -t tmpfs tmpfs "$root/tmp" && exec chroot "$root" "$@"')
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                           "sh", str(root), *cmd], capture_output=True, text=True, timeout=300,
                          check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                                            "HOME": "/root"})


@pytest.mark.root
def test_installed_the_cli_and_the_agent_run_from_the_venv(installed: Path) -> None:
    version = in_root(installed, "minormodectl", "--version")
    assert version.returncode == 0 and VERSION in version.stdout, version.stdout + version.stderr
    imports = in_root(installed, "/opt/minormode/venv/bin/python", "-c",
                      "import sys, agent.daemon, agent.firstboot, cryptography, dbus_fast\n"
                      "from agent.filter import fastpath\nassert fastpath.load()\n"
                      "assert sys.prefix == '/opt/minormode/venv', sys.prefix\n"
                      "assert not any('dist-packages' in p for p in sys.path), sys.path")
    assert imports.returncode == 0, imports.stderr
    # postinst compiled the bytecode (the first start on a slow board does not)
    assert list((installed / SITE / "agent").glob("__pycache__/daemon.cpython-311.pyc"))


@pytest.mark.root
def test_installed_the_units_are_enabled_and_verify(installed: Path) -> None:
    for unit in ("minormode-agent.service", "minormode-firstboot.service"):
        state = subprocess.run(["systemctl", f"--root={installed}", "is-enabled", unit],
                               capture_output=True, text=True, check=False)
        assert state.stdout.strip() == "enabled", (unit, state.stdout, state.stderr)
    user = subprocess.run(["systemctl", f"--root={installed}", "--global", "is-enabled",
                           "minormode-session-helper.service"], capture_output=True, text=True, check=False)
    assert user.stdout.strip() == "enabled", user.stdout + user.stderr
    units = sorted(p.name for p in (installed / "usr/lib/systemd/system").glob("minormode-*.service"))
    # --man=no: the root has no man(1); the pages are checked by the test above
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={installed}", "--recursive-errors=no", "--man=no",
                             *(f"/usr/lib/systemd/system/{u}" for u in units)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.root
def test_installed_the_default_settings_are_the_agents(installed: Path) -> None:
    check = in_root(installed, "/opt/minormode/venv/bin/python", "-m", "agent.daemon",
                    "--config", "/etc/minormode/agent.conf", "--check-settings")
    assert check.returncode == 0, check.stdout + check.stderr
    assert '"/var/lib/minormode"' in check.stdout


@pytest.mark.root
def test_purged_nothing_of_the_package_is_left(installed: Path) -> None:
    run = in_root(installed, "dpkg", "--purge", "minormode")
    assert run.returncode == 0, run.stdout + run.stderr
    left = [p for p in ("opt/minormode", "etc/minormode", "usr/bin/minormodectl",
                        "lib/systemd/system/minormode-agent.service",
                        "etc/systemd/system/multi-user.target.wants/minormode-agent.service")
            if (installed / p).exists() or (installed / p).is_symlink()]
    assert left == []
