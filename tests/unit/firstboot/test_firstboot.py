"""First boot on the host with a temporary state directory: key, pairing, idempotence,
bad factory settings changing nothing."""

from __future__ import annotations

import argparse
import json
import stat
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import firstboot
from agent.factory import FactoryError, load_factory_settings
from agent.store.identity import load_device_key, public_key_bytes
from agent.store.layout import StoreLayout

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "image-build" / "factory.toml"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
GOOD = """
manufacturer = "Acme"
model = "Kid 1"
default_age_band = "3-8"
dashboard_url = "https://dash.example.org/pair"
locale = "en"
"""


def _factory(tmp_path: Path, text: str = GOOD) -> Path:
    path = tmp_path / "factory.toml"
    path.write_text(text)
    return path


def test_shipped_factory_file_is_valid() -> None:
    settings = load_factory_settings(SHIPPED)
    assert settings.manufacturer and settings.model
    assert (REPO / "config" / "policies" / f"{settings.default_age_band.value}.toml").exists()


def test_first_boot_makes_key_and_enters_pairing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    record = firstboot.provision(_factory(tmp_path), state, NOW)
    key_file = StoreLayout(state).device_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    key = load_device_key(key_file)
    assert record["state"] == "pairing"
    assert record["device_fingerprint"] == firstboot.fingerprint(public_key_bytes(key))
    code = record["pairing_code"]
    assert isinstance(code, str) and len(code) == 8 and code.isdigit()
    assert record["factory"] == {"manufacturer": "Acme", "model": "Kid 1", "default_age_band": "3-8",
                                 "dashboard_url": "https://dash.example.org/pair", "locale": "en"}
    on_disk = json.loads((state / firstboot.PAIRING).read_text())
    assert on_disk == record
    assert stat.S_IMODE((state / firstboot.PAIRING).stat().st_mode) == 0o600


def test_second_run_keeps_key_and_code(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = firstboot.provision(_factory(tmp_path), state, NOW)
    key_bytes = (StoreLayout(state).device_key).read_bytes()
    second = firstboot.provision(_factory(tmp_path), state, NOW)
    assert second == first
    assert (StoreLayout(state).device_key).read_bytes() == key_bytes


def test_a_paired_device_stays_paired(tmp_path: Path) -> None:
    state = tmp_path / "state"
    record = firstboot.provision(_factory(tmp_path), state, NOW)
    record["state"] = "paired"
    (state / firstboot.PAIRING).write_text(json.dumps(record))
    assert firstboot.provision(_factory(tmp_path), state, NOW)["state"] == "paired"


def test_a_garbled_pairing_file_starts_pairing_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    firstboot.provision(_factory(tmp_path), state, NOW)
    (state / firstboot.PAIRING).write_text("{not json")
    again = firstboot.provision(_factory(tmp_path), state, NOW)
    assert again["state"] == "pairing"
    assert json.loads((state / firstboot.PAIRING).read_text()) == again


@pytest.mark.parametrize(("edit", "named"), [
    (('locale = "en"', 'locale = "fr"'), "locale"),
    (('default_age_band = "3-8"', 'default_age_band = "7-9"'), "default_age_band"),
    (('https://dash.example.org/pair', 'http://dash.example.org/pair'), "dashboard_url"),
    (('model = "Kid 1"', 'model = ""'), "model"),
    (('manufacturer = "Acme"', 'manufacturer = 3'), "manufacturer"),
    (('locale = "en"', 'locale = "en"\ncolour = "red"'), "colour"),
    (('model = "Kid 1"', 'model = "Kid 1'), "not valid TOML"),
])
def test_bad_factory_settings_name_the_key_and_write_nothing(
        tmp_path: Path, edit: tuple[str, str], named: str) -> None:
    path = _factory(tmp_path, GOOD.replace(*edit))
    state = tmp_path / "state"
    with pytest.raises(FactoryError) as err:
        firstboot.provision(path, state, NOW)
    assert named in str(err.value) and str(path) in str(err.value)
    assert not state.exists()


def test_missing_factory_file(tmp_path: Path) -> None:
    with pytest.raises(FactoryError, match="cannot read"):
        firstboot.provision(tmp_path / "nope.toml", tmp_path / "state", NOW)


def test_register_adds_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    firstboot.register(sub)
    args = parser.parse_args(["firstboot", "--factory", str(_factory(tmp_path)),
                              "--state", str(tmp_path / "s")])
    assert args.func(args) == 0
    assert "pairing mode: open https://dash.example.org/pair and enter code" in capsys.readouterr().out


def test_module_entry_point_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "agent.firstboot", "--factory", str(_factory(tmp_path)),
                         "--state", str(tmp_path / "s")], capture_output=True, text=True, cwd=REPO,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "agent.firstboot", "--factory",
                          str(_factory(tmp_path, GOOD.replace("en", "xx"))), "--state",
                          str(tmp_path / "t")], capture_output=True, text=True, cwd=REPO, check=False)
    assert bad.returncode == 2 and "locale" in bad.stderr
    assert not (tmp_path / "t").exists()


def test_an_offline_only_device_says_so_at_first_boot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _factory(tmp_path, GOOD.replace('dashboard_url = "https://dash.example.org/pair"\n', ""))
    settings = load_factory_settings(path)
    assert settings.dashboard_url is None and "dashboard_url" not in settings.as_dict()
    assert firstboot.main(["--factory", str(path), "--state", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "offline only (no dashboard_url in the factory settings); pairing code" in out


def test_optional_factory_keys_round_trip(tmp_path: Path) -> None:
    text = GOOD + 'dashboard_ca = "ca.pem"\ndns_upstreams = ["223.5.5.5:53"]\n'
    settings = load_factory_settings(_factory(tmp_path, text))
    assert settings.dashboard_ca == "ca.pem" and settings.dns_upstreams == ("223.5.5.5:53",)
    assert settings.as_dict() == tomllib.loads(text)
