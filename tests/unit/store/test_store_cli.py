"""minormodectl journal/data/purchases/guardian-key, through the real argument parser."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.cli.main import build_parser
from agent.core.policy import SpendingCaps
from agent.store import datarights, seal
from agent.store.events import Event, EventKind
from agent.store.layout import StoreLayout


def run(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A state directory with a paired journal of 3 events and one before pairing."""
    d = tmp_path / "state"
    layout = StoreLayout(d)
    with layout.open_journal(clock=lambda: datetime.now(UTC)) as j:
        j.record(Event(EventKind.AGENT_START, datetime.now(UTC), {}))
    assert run("guardian-key", "new", "--out", str(tmp_path / "guardian.pem")) == 0
    pub = capsys.readouterr().out.strip()
    assert run("journal", "pair", "--state", str(d), "--guardian", pub) == 0
    assert "re-wrapped 1" in capsys.readouterr().out
    with layout.open_journal(clock=lambda: datetime.now(UTC)) as j:
        j.append([Event(EventKind.DNS_BLOCKED, datetime.now(UTC), {"domain": f"d{i}.test"})
                  for i in range(2)])
        j.record(Event(EventKind.REPORT, datetime.now(UTC), {"text": "someone was mean"}))
    return d


def test_verify_read_and_list(state: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    key = str(tmp_path / "guardian.pem")
    assert run("journal", "verify", "--state", str(state)) == 0
    assert "journal ok: 4 records" in capsys.readouterr().out
    assert run("journal", "read", "--state", str(state), "--key", key) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["kind"] for x in lines] == ["agent_start", "dns_blocked", "dns_blocked", "report"]
    assert lines[3]["data"] == {"text": "someone was mean"}
    assert run("data", "list", "--state", str(state)) == 0
    out = capsys.readouterr().out
    assert "4 sealed records" in out and "report" not in out  # kinds stay sealed
    assert run("data", "list", "--state", str(state), "--key", key) == 0
    out = capsys.readouterr().out
    assert "dns_blocked: 2" in out and "report: 1" in out


def test_verify_names_the_bad_record(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = sqlite3.connect(StoreLayout(state).journal, isolation_level=None)
    db.execute("DELETE FROM records WHERE seq = 3")
    assert run("journal", "verify", "--state", str(state)) == 1
    assert "BAD at record 3" in capsys.readouterr().out


def test_export_opens_with_the_guardian_key(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    assert run("journal", "export", "--state", str(state), "--out", str(out)) == 0
    assert out.stat().st_mode & 0o077 == 0
    assert b"someone was mean" not in out.read_bytes()
    entries = datarights.read_export(out, seal.load_private_key(tmp_path / "guardian.pem"))
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    body = json.loads(out.read_text())
    body["segments"][-1]["records"][0]["ciphertext"] = "00" + body["segments"][-1]["records"][
        0]["ciphertext"][2:]
    out.write_text(json.dumps(body))
    with pytest.raises(datarights.ExportError, match="changed"):
        datarights.read_export(out, seal.load_private_key(tmp_path / "guardian.pem"))


def test_delete_needs_yes_then_deletes_everything(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = StoreLayout(state)
    ledger = layout.open_ledger()
    ledger.authorize(caps=SpendingCaps("CNY", 100, 100, 100, 100), tz=UTC, app_id="a",
                     amount=1, currency="CNY", item="x", idempotency_key="k",
                     now=datetime.now(UTC))
    assert run("data", "delete", "--state", str(state)) == 2
    assert "--yes" in capsys.readouterr().err
    assert run("data", "delete", "--state", str(state), "--yes", "--reason", "unpaired") == 0
    assert "deleted 2 segments, 4 records" in capsys.readouterr().out
    assert ledger.count() == 0
    assert run("journal", "verify", "--state", str(state)) == 0
    assert run("data", "list", "--state", str(state)) == 0
    out = capsys.readouterr().out
    assert "0 sealed records" in out and "(unpaired)" in out


def test_bad_key_file_is_named(state: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    assert run("journal", "read", "--state", str(state), "--key", str(bad)) == 2
    assert str(bad) in capsys.readouterr().err
    assert run("journal", "read", "--state", str(state), "--key", str(tmp_path / "nope")) == 2
    assert run("journal", "pair", "--state", str(state), "--guardian", "zz") == 2
    assert "not hex" in capsys.readouterr().err
    assert run("journal", "verify", "--state", str(tmp_path / "empty")) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="purchases approve/deny is root-only")
def test_root_answers_pending_purchases(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    layout = StoreLayout(tmp_path)
    ledger = layout.open_ledger()
    caps = SpendingCaps("CNY", 5000, 5000, 5000, ask_above=0)
    now = datetime.now(UTC)
    ids = [ledger.authorize(caps=caps, tz=ZoneInfo("Asia/Shanghai"), app_id="org.shop",
                            amount=100, currency="CNY", item="gems", idempotency_key=k,
                            now=now).request_id for k in ("a", "b")]
    assert run("purchases", "list", "--state", str(tmp_path), "--status", "pending") == 0
    out = capsys.readouterr().out
    assert all(i in out for i in ids)
    assert run("purchases", "approve", "--state", str(tmp_path), ids[0]) == 0
    assert run("purchases", "deny", "--state", str(tmp_path), ids[1]) == 0
    assert run("purchases", "deny", "--state", str(tmp_path), ids[1]) == 2
    assert "is denied" in capsys.readouterr().err
    statuses = {p.request_id: p.status.value for p in ledger.purchases()}
    assert statuses == {ids[0]: "approved", ids[1]: "denied"}
    assert [p.request_id for p in ledger.take_unannounced()] == ids
    first = ledger.get(ids[0])
    assert first is not None and first.expires_at is not None
    assert first.expires_at > now + timedelta(hours=1)  # the default pending time is 24 h


def test_unpair_deletes_and_forgets_the_guardian(state: Path, tmp_path: Path) -> None:
    assert run("data", "delete", "--state", str(state), "--yes", "--unpair",
               "--reason", "unpaired") == 0
    layout = StoreLayout(state)
    with layout.open_journal(clock=lambda: datetime.now(UTC)) as j:
        assert j.guardians() == []
        j.record(Event(EventKind.LOCK, datetime.now(UTC), {}))
        assert [role for s in j.segments() for role, _ in s.recipients] == ["device-local"]
        assert list(j.read(seal.load_private_key(tmp_path / "guardian.pem"))) == []
