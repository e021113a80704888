"""The daemon's settings files: agent.conf and its agent.conf.d/*.conf drop-ins, layered in
lexical order (a later file wins per key), the command line over all of them; every bad
input exits 2 naming the file, the line and the key, and the daemon starts nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.layered import dropin_names
from agent.runtime.config import parse_config

ROOT = Path(__file__).parents[3]


def conf(tmp_path: Path, main: str, **dropins: str) -> Path:
    path = tmp_path / "agent.conf"
    path.write_text(main)
    if dropins:
        (tmp_path / "agent.conf.d").mkdir()
    for name, text in dropins.items():
        (tmp_path / "agent.conf.d" / name.replace("_", "-")).write_text(text)
    return path


def test_drop_ins_apply_in_lexical_order_and_the_later_wins_per_key(tmp_path: Path) -> None:
    path = conf(tmp_path, 'speed = 120\nchild_uid = [1001]\nband = "3-8"\n',
                **{"20-factory.conf": "speed = 300\n", "10-image.conf": "speed = 200\nchild_uid = [1002]\n",
                   "90-local.conf.dpkg-old": "speed = 999\n", ".50-hidden.conf": "speed = 998\n"})
    config = parse_config(["--config", str(path)])
    assert config.speed == 300.0  # 20-factory after 10-image after agent.conf
    assert config.child_uids == (1002,)  # 10-image over agent.conf; 20-factory leaves it
    assert config.band.value == "3-8"  # only agent.conf sets it


def test_the_command_line_wins_over_every_file(tmp_path: Path) -> None:
    path = conf(tmp_path, "speed = 120\n", **{"10-image.conf": "speed = 200\n"})
    assert parse_config(["--config", str(path), "--speed", "30"]).speed == 30.0


def test_no_drop_in_directory_is_none(tmp_path: Path) -> None:
    assert parse_config(["--config", str(conf(tmp_path, "speed = 120\n"))]).speed == 120.0


def test_drop_in_names_sort_as_bytes_and_skip_what_is_not_a_drop_in() -> None:
    assert dropin_names(["b.conf", "a.conf", "B.conf", "x.toml", ".a.conf", "c.conf~"]) == \
        ["B.conf", "a.conf", "b.conf"]


@pytest.mark.parametrize(("dropin", "named"), [
    ("# the manufacturer's\n\nbogus = 1\n", "10-image.conf:3: bogus = 1: unknown setting"),
    ('speed = "fast"\n', '10-image.conf:1: speed = "fast": expected a number'),
    ('child_uid = "1000"\n', '10-image.conf:1: child_uid = "1000": expected a list'),
    ("speed = -1\n", "10-image.conf:1: speed = -1: --speed -1.0: must be above 0"),
    ("child_uid = [0]\n", "10-image.conf:1: child_uid = [0]: --child-uid [0]: the child is never root"),
    ('start = "tomorrow"\n', "10-image.conf:1: start = \"tomorrow\": --start 'tomorrow'"),
    ('dns_upstream = ["nowhere"]\n', "10-image.conf:1: dns_upstream = [\"nowhere\"]: 'nowhere': expected IP:PORT"),
    ("[dns]\nupstream = 1\n", "10-image.conf:1: dns = "),
    ("speed = = 3\n", "10-image.conf:1: (top level): not valid TOML"),
    (b"speed = '\xff'\n", "10-image.conf: (top level): not UTF-8"),
])
def test_a_bad_drop_in_exits_2_naming_file_line_and_key(tmp_path: Path, dropin: str | bytes, named: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path, "speed = 120\n", **{"20-factory.conf": "speed = 300\n"})
    target = tmp_path / "agent.conf.d" / "10-image.conf"
    target.write_bytes(dropin if isinstance(dropin, bytes) else dropin.encode())
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert f"{tmp_path}/agent.conf.d/{named}" in err


def test_every_problem_in_every_file_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path, "speed = 0\n", **{"10-image.conf": "\nbogus = true\n"})
    with pytest.raises(SystemExit):
        parse_config(["--config", str(path)])
    err = capsys.readouterr().err
    assert f"{path}:1: speed = 0: --speed 0.0" in err
    assert f"{path}.d/10-image.conf:2: bogus = true: unknown setting" in err


@pytest.mark.parametrize("kind", ["dangling symlink", "directory"])
def test_an_unreadable_drop_in_exits_2_naming_it(tmp_path: Path, kind: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path, "speed = 120\n", **{"10-image.conf": "speed = 200\n"})
    bad = tmp_path / "agent.conf.d" / "50-local.conf"
    if kind == "directory":
        bad.mkdir()
    else:
        bad.symlink_to(tmp_path / "gone.conf")
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"{bad}: (top level): cannot read: " in err


def test_a_drop_in_directory_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path, "speed = 120\n")
    (tmp_path / "agent.conf.d").write_text("")
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(path)])
    assert exit_.value.code == 2
    assert f"{path}.d: (top level): cannot list the drop-in directory" in capsys.readouterr().err


def test_a_clash_across_files_names_both_places(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = conf(tmp_path, 'dns_upstreams_from = "/run/systemd/resolve/resolv.conf"\n',
                **{"20-factory.conf": '# fixed resolvers\ndns_upstream = ["10.0.0.1:53"]\n'})
    with pytest.raises(SystemExit):
        parse_config(["--config", str(path)])
    err = capsys.readouterr().err
    assert f"{path}:1: dns_upstreams_from = " in err and "not both" in err
    assert f"{path}.d/20-factory.conf:2: dns_upstream = " in err


def test_a_resolver_is_judged_against_the_listen_address_another_file_sets(tmp_path: Path) -> None:
    """127.0.0.1:53 alone would be the filter's own (default) address; with the filter moved
    to :5300 by a later drop-in it is a resolver beside it, not a loop."""
    path = conf(tmp_path, 'dns_upstream = ["127.0.0.1:53"]\n', **{"50-local.conf": 'dns_listen = ["127.0.0.1:5300"]\n'})
    assert parse_config(["--config", str(path)]).dns_upstreams == (("127.0.0.1", 53),)


def test_the_daemon_refuses_bad_settings_before_it_touches_its_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = conf(tmp_path, f'state = "{state}"\nbus_address = "none"\n', **{"10-image.conf": "bogus = 1\n"})
    proc = subprocess.run([sys.executable, "-m", "agent.daemon", "--config", str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)
    assert proc.returncode == 2 and "10-image.conf:1: bogus = 1: unknown setting" in proc.stderr
    assert "Traceback" not in proc.stderr and not state.exists()
