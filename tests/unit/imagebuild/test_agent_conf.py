"""image-build's agent settings: config/agent.conf, the image's drop-in 10-image.conf and the
manufacturer's 20-factory.conf that lib/agent_conf.py renders from the factory settings (run
as the build runs it, a program), all read back by the agent's own settings parser, as the
device reads them (/etc/minormode/agent.conf and agent.conf.d/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.runtime.config import DaemonConfig, parse_config

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "image-build/lib/agent_conf.py"
FACTORY = """\
manufacturer = "Acme"
model = "Kid 1"
default_age_band = "8-12"
locale = "en"
"""


def render(tmp_path: Path, extra: str = "") -> tuple[subprocess.CompletedProcess[str], Path]:
    factory = tmp_path / "factory.toml"
    factory.write_text(FACTORY + extra)
    out = tmp_path / "20-factory.conf"
    run = subprocess.run([sys.executable, str(SCRIPT), str(factory), str(out)],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return run, out


def device_settings(tmp_path: Path, factory_conf: Path) -> DaemonConfig:
    """The agent's parse of the settings as the image installs them, with the exec gate's
    image paths left out (they exist only inside the image; layer.sh checks them there with
    --check-settings)."""
    etc = tmp_path / "etc"
    (etc / "agent.conf.d").mkdir(parents=True)
    shutil.copy(REPO / "config/agent.conf", etc / "agent.conf")
    image = (REPO / "image-build/agent.conf.d/10-image.conf").read_text()
    without_base = re.sub(r"(?ms)^exec_gate_base = \[.*?^\]\n", "", image)
    assert without_base != image
    (etc / "agent.conf.d/10-image.conf").write_text(without_base)
    shutil.copy(factory_conf, etc / "agent.conf.d/20-factory.conf")
    return parse_config(["--config", str(etc / "agent.conf"), "--state", str(tmp_path)])


def test_offline_only_and_the_networks_resolvers(tmp_path: Path) -> None:
    run, out = render(tmp_path)
    assert run.returncode == 0, run.stderr
    assert "OFFLINE ONLY" in run.stdout and "the network's resolvers" in run.stdout
    config = device_settings(tmp_path, out)
    assert config.child_uids_given == (1000,) and config.exec_gate_marks == ("/",)  # 10-image.conf
    assert config.policy == Path("/etc/minormode/policy.toml")  # agent.conf
    assert config.dns_upstreams_from == Path("/run/systemd/resolve/resolv.conf")
    assert config.dns_upstreams == () and config.dns_filter_on
    assert config.dashboard is None and not config.pair_on_start
    assert config.usbguard and config.watch_devices and config.boot_check  # the device lockdown (issue 18)


def test_the_manufacturers_dashboard_ca_and_resolvers(tmp_path: Path) -> None:
    run, out = render(tmp_path, 'dashboard_url = "https://dash.example.org/pair"\n'
                                'dashboard_ca = "ca.pem"\ndns_upstreams = ["223.5.5.5:53", "[2400:3200::1]:53"]\n')
    assert run.returncode == 0, run.stderr
    assert "dashboard: https://dash.example.org/pair (TLS checked against CA ca.pem)" in run.stdout
    assert "OFFLINE" not in run.stdout and "223.5.5.5:53, [2400:3200::1]:53" in run.stdout
    config = device_settings(tmp_path, out)
    assert config.dashboard == "https://dash.example.org/pair" and config.pair_on_start
    assert config.dashboard_ca == Path("/etc/minormode/dashboard-ca.pem")
    assert config.dns_upstreams == (("223.5.5.5", 53), ("2400:3200::1", 53))
    assert config.dns_upstreams_from is None
    assert "#   dashboard: https://dash.example.org/pair" in out.read_text()  # said in the file too


def test_a_url_with_toml_and_shell_metacharacters_arrives_as_written(tmp_path: Path) -> None:
    """No shell splitting any more: the file holds the URL as a TOML string."""
    url = 'https://dash.example.org/a$b"c\\d'
    run, out = render(tmp_path, f"dashboard_url = '{url}'\n")
    assert run.returncode == 0, run.stderr
    assert device_settings(tmp_path, out).dashboard == url


@pytest.mark.parametrize(("extra", "named"), [
    ('dashboard_ca = "ca.pem"\n', "dashboard_ca: given without a dashboard_url"),
    ('dns_upstreams = ["dns.example:53"]\n', "dns_upstreams: 'dns.example:53' is not IP:PORT"),
    ('dns_upstreams = "223.5.5.5:53"\n', "dns_upstreams: must be a list"),
    ('dashboard_url = "http://dash.example.org"\n', "dashboard_url"),
])
def test_bad_factory_settings_stop_the_build(tmp_path: Path, extra: str, named: str) -> None:
    run, out = render(tmp_path, extra)
    assert run.returncode == 2 and named in run.stderr and "factory.toml" in run.stderr
    assert not out.exists()
