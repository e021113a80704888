"""The production wiring never loads the development parts, and `--help` and bad settings
behave (the daemon's command line and its --config file)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.core.policy import AgeBand
from agent.runtime.config import DaemonConfig, parse_config

ROOT = Path(__file__).parents[3]


def test_importing_the_production_wiring_does_not_import_agent_dev() -> None:
    probe = ("import sys, agent.daemon, agent.runtime.services, agent.cli.main\n"
             "print(sorted(m for m in sys.modules if m == 'agent.dev' or m.startswith('agent.dev.')))\n"
             "print('agent.runtime.services' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.splitlines()
    assert out == ["[]", "True"]


def test_the_probe_would_see_agent_dev() -> None:
    """The same probe after the dev session module is imported (the probe can fail)."""
    probe = ("import sys, agent.daemon, agent.dev.session\n"
             "print(sorted(m for m in sys.modules if m == 'agent.dev' or m.startswith('agent.dev.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.strip()
    assert "agent.dev.session" in out


def test_defaults_are_the_devices() -> None:
    config = parse_config([])
    assert config == DaemonConfig()
    assert config.policy == Path("/etc/minormode/policy.toml")
    assert config.state == Path("/var/lib/minormode")
    assert config.child_uids == (1000,) and config.dev_child_uid is None
    assert config.start == datetime.fromisoformat("2026-11-23T06:55:00+08:00")  # as README shows
    assert config.uses_bus and config.lists_dir == Path("/var/lib/minormode/lists")


def test_the_image_command_line(tmp_path: Path) -> None:
    """systemd/minormode-agent.service's ExecStart= is --config and nothing else: every device
    setting comes from agent.conf and its drop-ins (tests/unit/imagebuild reads the image's)."""
    unit = (ROOT / "systemd/minormode-agent.service").read_text()
    exec_start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert exec_start == ["ExecStart=/opt/minormode/venv/bin/python -m agent.daemon "
                          "--config /etc/minormode/agent.conf"]
    assert "EnvironmentFile=" not in unit
    base = tmp_path / "helper"
    base.write_text("")
    config = parse_config(["--policy", "/etc/minormode/policy.toml", "--state", str(tmp_path),
                           "--child-uid", "1000", "--exec-gate-mark", "/", "--exec-gate-base", str(base),
                           "--exec-gate-base", str(tmp_path), "--dns-upstream", "192.168.1.1:53",
                           "--dns-upstream", "[::1]:5353"])
    assert config.child_uids_given == (1000,) and config.exec_gate_marks == ("/",)
    assert config.exec_gate_bases == (base.resolve(), tmp_path.resolve())
    assert config.dns_upstreams == (("192.168.1.1", 53), ("::1", 5353))


def test_check_settings_prints_what_the_agent_would_run_with(tmp_path: Path) -> None:
    settings = tmp_path / "agent.conf"
    settings.write_text('child_uid = [1001]\ndns_upstream = ["10.0.0.1:53"]\n')
    proc = subprocess.run([sys.executable, "-m", "agent.daemon", "--config", str(settings),
                           "--state", str(tmp_path / "state"), "--check-settings"],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["child_uids_given"] == [1001] and shown["dns_upstreams"] == [["10.0.0.1", 53]]
    assert shown["state"] == str(tmp_path / "state") and not (tmp_path / "state").exists()


def test_settings_file_and_the_command_line_wins(tmp_path: Path) -> None:
    settings = tmp_path / "agent.toml"
    settings.write_text('child_uid = [1001, 1002]\nexec_gate_mark = ["/"]\nspeed = 600\n'
                        'dns_upstream = ["10.0.0.1:53"]\nband = "12-16"\ndev = true\n'
                        'start = "2026-11-27T19:00+08:00"\n')
    config = parse_config(["--config", str(settings), "--speed", "120", "--state", str(tmp_path)])
    assert config.child_uids == (1001, 1002) and config.dev_child_uid == 1001
    assert config.exec_gate_marks == ("/",) and config.dns_upstreams == (("10.0.0.1", 53),)
    assert config.band is AgeBand.AGE_12_16 and config.dev
    assert config.speed == 120.0  # the command line over the file
    assert config.start == datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    assert config.state == tmp_path


def test_a_missing_settings_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(tmp_path / "nope.toml")])
    assert exit_.value.code == 2 and "nope.toml: (top level): cannot read: No such file" in capsys.readouterr().err


def test_the_release_image_follows_the_networks_resolvers(tmp_path: Path) -> None:
    """image-build's release settings: no fixed resolver, the file resolved writes."""
    settings = tmp_path / "agent.toml"
    settings.write_text('dns_upstreams_from = "/run/systemd/resolve/resolv.conf"\n')
    for config in (parse_config(["--dns-upstreams-from", "/run/systemd/resolve/resolv.conf"]),
                   parse_config(["--config", str(settings)])):
        assert config.dns_upstreams_from == Path("/run/systemd/resolve/resolv.conf")
        assert config.dns_upstreams == () and config.dns_filter_on
    assert not parse_config([]).dns_filter_on


@pytest.mark.parametrize(("argv", "named"), [
    (["--dns-upstream", "127.0.0.1:53"], "--dns-upstream 127.0.0.1:53: the DNS filter's own address"),
    (["--dns-upstream", "0.0.0.0:53"], "--dns-upstream 0.0.0.0:53: the DNS filter's own address"),
    (["--dns-listen", "127.0.0.1:5300", "--dns-upstream", "127.0.0.1:5300"], "own address"),
    (["--dns-upstream", "10.0.0.1:53", "--dns-upstreams-from", "/run/x"], "not both"),
    (["--dns-upstream", "dns.example:53"], "'dns.example' is not an IP address"),
])
def test_dns_settings_that_would_loop_or_clash_exit_2(argv: list[str], named: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_config(argv)
    assert exit_.value.code == 2 and named in capsys.readouterr().err


def test_a_resolver_beside_the_filter_is_not_a_loop() -> None:
    config = parse_config(["--dns-listen", "127.0.0.1:5300", "--dns-upstream", "127.0.0.1:53"])
    assert config.dns_upstreams == (("127.0.0.1", 53),)
