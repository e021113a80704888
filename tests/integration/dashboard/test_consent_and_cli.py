"""A material change of the consent notice asks every guardian again (and pauses optional
processing until one answers); the operator's command line works on a real database and
prints no plaintext."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.dashboard_clients import pair

from dashboard import consent
from dashboard.consent import NoticeVersion


def test_material_change_asks_again(make_guardian, make_device, monkeypatch: pytest.MonkeyPatch) -> None:
    mum = make_guardian()
    dev = make_device()
    family = pair(mum, dev)
    dev.record("lock", {"n": 1})
    assert dev.upload(0).status_code == 200
    assert mum.ok("GET", "/api/v1/consent/pending") == []
    texts = consent.NOTICES[-1].texts
    monkeypatch.setattr(consent, "NOTICES", (*consent.NOTICES, NoticeVersion("2027-01", True, texts)))
    pending = mum.ok("GET", "/api/v1/consent/pending")
    assert [(p["device"], p["answered_version"], p["current_version"]) for p in pending] == \
        [(dev.id, "2026-12", "2027-01")]
    status = mum.ok("GET", f"/api/v1/families/{family}/devices/{dev.id}")["consent"]
    assert status["asked_again"] and not status["usage_reports"]
    dev.record("lock", {"n": 2})
    r = dev.upload(0)
    assert r.status_code == 403 and r.json()["type"].endswith("no-consent")
    assert dev.send_request(5, "still works")[1].status_code == 200  # basic functions go on
    assert mum.ok("GET", "/api/v1/consent/notice", params={"language": "zh-CN"})["version"] == "2027-01"
    mum.ok("POST", f"/api/v1/families/{family}/devices/{dev.id}/consent",
           json={"version": "2027-01", "language": "zh-CN", "accepted": True, "usage_reports": True,
                 "push_notifications": False})
    assert mum.ok("GET", "/api/v1/consent/pending") == []
    assert dev.upload(0).json()["cursor"] == 2
    # a non-material change does not ask again
    monkeypatch.setattr(consent, "NOTICES", (*consent.NOTICES, NoticeVersion("2027-02", False, texts)))
    assert mum.ok("GET", "/api/v1/consent/pending") == []


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dashboard.cli", "--db", url, *args], check=False, capture_output=True,
                          text=True, timeout=120)


def test_admin_commands(make_guardian, make_device, server, db_url, tmp_path) -> None:
    mum = make_guardian()
    dev = make_device()
    pair(mum, dev)
    dev.record("dns_blocked", {"domain": "cli-secret-domain.example"})
    dev.upload(0)
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    assert _cli(url, "migrate").returncode == 0
    stats = _cli(url, "admin", "stats")
    assert stats.returncode == 0
    counts = json.loads(stats.stdout)
    assert counts["accounts"] == 1 and counts["devices"] == 1 and counts["journal_records"] == 1
    purge = _cli(url, "admin", "purge")
    assert purge.returncode == 0 and json.loads(purge.stdout)["journal_records"] == 0
    before = mum.ok("GET", f"/api/v1/families/{dev.family}/devices/{dev.id}/journal")
    assert _cli(url, "admin", "new-epoch").returncode == 0
    assert dev.http.get("/api/v1/device/journal", headers=dev.auth).json()["epoch"] != dev.epoch
    assert _cli(url, "admin", "disable-account", mum.email).returncode == 0
    assert mum.call("GET", "/api/v1/families").status_code == 401
    assert mum.login().status_code == 401
    assert _cli(url, "admin", "disable-account", mum.email, "--enable").returncode == 0
    assert mum.login().status_code == 200
    assert _cli(url, "admin", "disable-account", "nobody@example.com").returncode == 1
    empty = _cli(f"sqlite:///{tmp_path / 'empty.sqlite'}", "admin", "stats")
    assert empty.returncode == 2 and "run `minormode-dashboard migrate`" in empty.stderr and not empty.stdout
    everything = stats.stdout + purge.stdout + json.dumps(before)
    assert "cli-secret-domain" not in everything
