"""`python -m agent.os.usbguard rules --policy FILE`: the baseline image-build writes into
USBGuard's RuleFile; a bad policy exits 2 naming its problem and prints no rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.os.usbguard import main


def test_the_baseline_follows_the_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('version = 1\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n'
                      '[usb]\nallow_classes = ["storage"]\nallow_devices = ["2341:0043:S1"]\n')
    assert main(["rules", "--policy", str(policy)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        'allow id 2341:0043 serial "S1"',
        "allow with-interface match-all { 09:*:* 03:*:* 08:*:* }"]
    assert main(["rules"]) == 0
    assert capsys.readouterr().out.splitlines() == ["allow with-interface match-all { 09:*:* 03:*:* }"]


def test_a_bad_policy_exits_2_and_prints_no_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('version = 1\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n[usb]\nallow_classes = ["disk"]\n')
    assert main(["rules", "--policy", str(policy)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "p.toml:5: usb.allow_classes" in out.err
