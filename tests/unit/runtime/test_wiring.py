"""The production wiring never loads the development parts, and `--help` and bad settings
behave (the daemon's command line and its --config file)."""

from __future__ import annotations

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
    """systemd/minormode-agent.service with image-build/agent.env's options."""
    base = tmp_path / "helper"
    base.write_text("")
    config = parse_config(["--policy", "/etc/minormode/policy.toml", "--state", str(tmp_path),
                           "--child-uid", "1000", "--exec-gate-mark", "/", "--exec-gate-base", str(base),
                           "--exec-gate-base", str(tmp_path), "--dns-upstream", "192.168.1.1:53",
                           "--dns-upstream", "[::1]:5353"])
    assert config.child_uids_given == (1000,) and config.exec_gate_marks == ("/",)
    assert config.exec_gate_bases == (base.resolve(), tmp_path.resolve())
    assert config.dns_upstreams == (("192.168.1.1", 53), ("::1", 5353))


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


@pytest.mark.parametrize(("text", "named"), [
    ("speed = -1\n", "--speed -1.0"),
    ("child_uid = [0]\n", "the child is never root"),
    ('dns_upstream = ["nowhere"]\n', "dns_upstream: 'nowhere': expected IP:PORT"),
    ('exec_gate_base = ["relative/path"]\n', "exec_gate_base"),
    ("bogus = 1\n", "bogus: unknown setting"),
    ('child_uid = "1000"\n', "child_uid: expected a list"),
    ("speed = = 3\n", "not valid TOML"),
    ('start = "tomorrow"\n', "--start 'tomorrow'"),
])
def test_a_bad_settings_file_exits_2_naming_file_and_key(tmp_path: Path, text: str, named: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "agent.toml"
    settings.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(settings)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(settings) in err and named in err


def test_a_missing_settings_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(tmp_path / "nope.toml")])
    assert exit_.value.code == 2 and "cannot read settings" in capsys.readouterr().err
