"""Every read command's --json parses and carries what its text shows (minormodectl)."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.cli.main import main
from agent.core.policy import SpendingCaps
from agent.store.events import Event, EventKind
from agent.store.layout import StoreLayout
from agent.store.state import StateStore

ROOT = Path(__file__).parents[3]
EXAMPLE = str(ROOT / "config" / "policies" / "8-12.toml")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def in_force(state: Path, timezone: str) -> None:
    """A policy in force in the state store, as the daemon leaves it: its timezone is the
    family's clock the text shows times in."""
    store = StateStore(state / "state.sqlite")
    store.save_policy(1, "test", {"timezone": timezone}, datetime.now(UTC))
    store.close()


def shanghai(iso: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def both(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, Any]:
    """The text output and the parsed --json output of one command."""
    assert main(list(argv)) == 0
    text = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    return text, json.loads(capsys.readouterr().out)


def test_check(capsys: pytest.CaptureFixture[str]) -> None:
    text, data = both(capsys, "check", EXAMPLE)
    assert data == {"file": EXAMPLE, "valid": True, "version": 1, "age_band": "8-12",
                    "timezone": "Asia/Shanghai"}
    assert text.strip() == (f"{EXAMPLE}: valid; version {data['version']}, age band {data['age_band']}, "
                            f"timezone {data['timezone']}")


def test_explain_locked_and_unlocked(capsys: pytest.CaptureFixture[str]) -> None:
    text, data = both(capsys, "explain", EXAMPLE, "--at", "2026-11-23T23:00")
    assert data["locked"] is True and data["reasons"][0] == "curfew"
    assert "LOCKED: " + ", ".join(data["reasons"]) in text
    assert data["at"] == "2026-11-23T15:00:00+00:00" and data["timezone"] == "Asia/Shanghai"
    assert data["unlock_at"] is not None
    text, data = both(capsys, "explain", EXAMPLE, "--at", "2026-11-23T17:00", "--used", "20",
                      "--settings")
    assert "unlocked; 40 min until the lock" in text
    assert (data["locked"], data["remaining_seconds"], data["used_seconds"]) == (False, 2400, 1200)
    assert f"used today: 20 min of {data['budget_seconds'] // 60} min" in text
    change = data["next_change"]
    assert f"next change: {change['kind']}" in text
    assert set(data["apps"]) == {"device_locked", "education_only", "games_open"}
    assert f"YouTube {data['filter']['youtube']}" in text
    assert data["spending"]["paid_allowed"] is ("no paid services" not in text)
    settings = {s["key"]: s for s in data["settings"]}
    assert settings["budget.mon"]["value"] == 60 and settings["budget.mon"]["source"] == "guardian"
    assert "budget.mon = 60   [guardian]" in text
    assert len(settings) == text.count("   [")


def test_simulate(capsys: pytest.CaptureFixture[str]) -> None:
    text, data = both(capsys, "simulate", EXAMPLE, "--day", "2026-11-27")
    lines = text.splitlines()
    assert len(data["entries"]) == len(lines) - 2  # a header and the total
    assert f"total use: {data['total_minutes']} min" == lines[-1]
    first_lock = next(e for e in data["entries"] if e["what"] == "locked" and e["at"] >= "2026-11-26T23:45")
    assert first_lock["reasons"] == ["outside_window"]
    assert "07:45:00  locked (outside_window) until Fri 2026-11-27 16:30" in text
    assert data["day"] == "2026-11-27" and data["use_from"] == "07:00:00"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    with StoreLayout(d).open_journal(clock=lambda: datetime.now(UTC)) as j:
        j.append([Event(EventKind.AGENT_START, datetime.now(UTC), {}),
                  Event(EventKind.DNS_BLOCKED, datetime.now(UTC), {"domain": "x.test"})])
    in_force(d, "Asia/Shanghai")
    return d


def test_journal_verify_good_and_bad(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, data = both(capsys, "journal", "verify", "--state", str(state))
    assert data == {"ok": True, "records": 2, "first_bad": None, "problem": ""}
    assert text.strip() == f"journal ok: {data['records']} records, chain and signatures verified"
    sqlite3.connect(StoreLayout(state).journal, isolation_level=None).execute(
        "DELETE FROM records WHERE seq = 1")
    assert main(["journal", "verify", "--state", str(state)]) == 1
    text = capsys.readouterr().out
    assert main(["journal", "verify", "--state", str(state), "--json"]) == 1
    bad = json.loads(capsys.readouterr().out)
    assert bad["ok"] is False and bad["problem"]
    assert text.strip() == f"journal BAD at record {bad['first_bad']}: {bad['problem']}"


def test_journal_read_is_json_lines_either_way(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = str(state / "journal-local.key")
    assert main(["journal", "read", "--state", str(state), "--key", key]) == 0
    text = capsys.readouterr().out
    assert main(["journal", "read", "--state", str(state), "--key", key, "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert text.splitlines() == [json.dumps(x, ensure_ascii=False, sort_keys=True) for x in lines]
    assert [x["kind"] for x in lines] == ["agent_start", "dns_blocked"]


def test_data_list(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = str(state / "journal-local.key")
    text, data = both(capsys, "data", "list", "--state", str(state), "--key", key)
    assert f"journal: {len(data['segments'])} segments, {data['records']} sealed records" in text
    assert data["records"] == 2 and data["kinds"] == {"agent_start": 1, "dns_blocked": 1}
    assert f"purchases: {data['purchases']}" in text
    seg = data["segments"][0]
    assert seg["opened_at"].endswith("+00:00")  # JSON: UTC; the text: the family's clock
    closed = shanghai(seg["closed_at"]) if seg["closed_at"] else "open"
    assert (f"segment {seg['uid']}  {shanghai(seg['opened_at'])} .. {closed}  2 records  "
            "sealed to: device-local") in text
    assert seg["sealed_to"] == ["device-local"]
    _, sealed = both(capsys, "data", "list", "--state", str(state))
    assert sealed["kinds"] is None  # without the key the kinds stay sealed


@pytest.mark.skipif(os.geteuid() != 0, reason="purchases is root-only")
def test_purchases_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_force(tmp_path, "Asia/Shanghai")
    ledger = StoreLayout(tmp_path).open_ledger()
    p = ledger.authorize(caps=SpendingCaps("CNY", 5000, 5000, 5000, ask_above=0),
                         tz=ZoneInfo("Asia/Shanghai"), app_id="org.shop", amount=100, currency="CNY",
                         item="gems", idempotency_key="k", now=datetime.now(UTC))
    text, data = both(capsys, "purchases", "list", "--state", str(tmp_path))
    [row] = data
    assert (row["request_id"], row["status"], row["amount"], row["currency"], row["app_id"],
            row["item"]) == (p.request_id, "pending", 100, "CNY", "org.shop", "gems")
    assert text.split() == [row["request_id"], row["status"], "¥1.00", "org.shop", '"gems"',
                            *shanghai(row["created_at"]).split(), *row["reason"].split()]


def test_lists_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "video.txt").write_text("tube.test\nclips.test\n")
    assert main(["lists", "compile", "--src", str(src), "--out", str(out), "--category", "video",
                 "--quiet"]) == 0
    capsys.readouterr()
    text, data = both(capsys, "lists", "info", "--out", str(out))
    rows = {r["list"]: r for r in data["lists"]}
    assert rows["video"]["state"] == "ok" and rows["video"]["names"] == 2
    assert data["bundle"] is None and data["bundle_problem"] is None
    *lines, bundle = text.splitlines()
    assert len(data["lists"]) == len(lines)
    assert bundle == "bundle: none (compiled from local sources)"
    for line in lines:
        row = rows[line.split()[0]]
        assert (f"{row['names']:,} names" if row["state"] == "ok" else row["state"]) in line
    (out / "video.mmdl").write_bytes(b"garbage")
    assert main(["lists", "info", "--out", str(out), "--json"]) == 1
    broken = {r["list"]: r for r in json.loads(capsys.readouterr().out)["lists"]}
    assert broken["video"]["state"] == "unreadable" and broken["video"]["problem"]
    # a damaged bundle record is named, with the file, and fails the command
    (out / "bundle.json").write_text("{not json")
    assert main(["lists", "info", "--out", str(out), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["bundle"] is None and "bundle.json" in info["bundle_problem"]
