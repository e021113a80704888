"""What minormodectl shows a person: yuan, minutes, local clock times in the policy's
timezone, "no limit" for the agent's -1s, and band defaults labelled as defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.cli.human import clock, money
from agent.cli.main import main
from agent.cli.running import describe_status

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).parents[3]
EXAMPLE = str(ROOT / "config" / "policies" / "8-12.toml")


@pytest.mark.parametrize(("minor", "currency", "shown"), [
    (5000, "CNY", "¥50.00"), (5, "CNY", "¥0.05"), (0, "CNY", "¥0.00"), (123456789, "CNY", "¥1,234,567.89"),
    (-250, "CNY", "-¥2.50"), (500, "JPY", "¥500"), (1999, "CHF", "19.99 CHF"),
])
def test_money_is_in_major_units(minor: int, currency: str, shown: str) -> None:
    assert money(minor, currency) == shown


def test_clock_is_local_and_dated_only_off_today() -> None:
    at = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)  # 16:30 in Shanghai
    assert clock(at, SHANGHAI, today=date(2026, 11, 23)) == "16:30"
    assert clock(at, SHANGHAI, today=date(2026, 11, 22)) == "Mon 23 Nov 16:30"


def status(**over: object) -> dict[str, object]:
    now = datetime.now(SHANGHAI).replace(hour=16, minute=30, second=0, microsecond=0)
    base: dict[str, object] = {
        "MinorMode": True, "AgeBand": "8-12", "Locked": False, "LockReason": "", "LockMessage": "",
        "RemainingSeconds": 600, "NextChange": int(now.timestamp()), "UsedSeconds": 1500,
        "BudgetSeconds": 3600, "Language": "en", "PolicyVersion": 3, "PolicySigner": "",
        "LastContact": 0, "PendingUploads": 2, "Timezone": "Asia/Shanghai"}
    return base | over


def test_status_in_minutes_and_clock_times() -> None:
    lines = describe_status(status())
    text = "\n".join(lines)
    assert "unlocked: 10 min left" in lines
    assert "next change: 16:30" in lines
    assert "used today: 25 min of 60 min" in lines
    assert "dashboard: last contact never, 2 waiting to be sent" in lines
    assert "times in Asia/Shanghai" in text
    assert "Seconds" not in text and str(status()["NextChange"]) not in text  # no epoch seconds


def test_status_minus_one_is_no_limit_and_a_lock_says_until() -> None:
    lines = describe_status(status(RemainingSeconds=-1, BudgetSeconds=-1, NextChange=0))
    assert "unlocked: no limit ahead" in lines and "used today: 25 min of no limit" in lines
    assert "-1" not in "\n".join(lines).replace("8-12", "")
    locked = describe_status(status(Locked=True, LockReason="budget_spent", LockMessage="Time is up"))
    assert "LOCKED until 16:30: Time is up (budget_spent)" in locked


def test_explain_spending_in_yuan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", EXAMPLE, "--at", "2026-11-23T17:00"]) == 0
    out = capsys.readouterr().out
    assert "spending: ¥50.00 a purchase, ¥100.00 a day, ¥200.00 a month" in out
    assert "minor units" not in out


def test_band_defaults_are_labelled_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    minimal = tmp_path / "p.toml"
    minimal.write_text('version = 1\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n'
                       '[budget]\nweekend = 90\n[curfew]\nwed = ["21:00-06:00"]\n')
    assert main(["explain", str(minimal), "--at", "2026-11-23T17:00", "--settings"]) == 0
    out = capsys.readouterr().out
    assert 'timezone = "Asia/Shanghai"   [guardian]' in out
    assert "budget.mon = 60   [band default]" in out and "budget.sat = 90   [guardian]" in out
    assert 'curfew.wed = ["21:00-06:00"]   [guardian]' in out
    assert 'curfew.thu = ["22:00-06:00"]   [band default]' in out
    assert "retention_days = 180   [band default]" in out and "waive = []   [band default]" in out
    assert "curfew.enabled = true" in out  # TOML, not a Python repr
