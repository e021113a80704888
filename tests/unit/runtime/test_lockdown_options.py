"""--usbguard, --watch-devices, --boot-check: off unless given (tests and development mode
run without USBGuard or udev), on from the command line or the settings file, and a
settings value that is not true/false is refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.runtime.config import parse_config


def test_off_by_default_on_when_given(tmp_path: Path) -> None:
    config = parse_config([])
    assert (config.usbguard, config.watch_devices, config.boot_check) == (False, False, False)
    config = parse_config(["--usbguard", "--watch-devices", "--boot-check"])
    assert (config.usbguard, config.watch_devices, config.boot_check) == (True, True, True)
    settings = tmp_path / "agent.toml"
    settings.write_text("usbguard = true\nboot_check = true\n")
    config = parse_config(["--config", str(settings)])
    assert (config.usbguard, config.watch_devices, config.boot_check) == (True, False, True)


def test_a_bad_settings_value_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "agent.toml"
    settings.write_text('usbguard = "yes"\n')
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--config", str(settings)])
    assert exit_.value.code == 2
    assert f"{settings}:1: usbguard = \"yes\": expected true or false" in capsys.readouterr().err
