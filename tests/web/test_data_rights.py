"""Data rights in Chromium: what is held (kinds and counts), the export (a file made in the
browser: the journal's records, the daily reports and the requests opened there, never on
the server), deletion (the server now, the tablet by the signed decision, a server-signed
receipt), the audit log of who read what, consent refused at pairing keeps optional
processing off; and the language is switchable and remembered."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import Page, expect
from support.dashboard_server import ThreadServer
from support.simulated_device import SimulatedDevice, busy_day
from support.web_flows import pair, sign_up, week_days

from protocol.messages import RequestKind


def test_holdings_export_delete_and_audit(page: Page, web_server: ThreadServer,
                                           make_tablet: Callable[..., SimulatedDevice]) -> None:
    mum = sign_up(page, "Mum")
    tablet = make_tablet()
    pair(mum, tablet)
    tablet.start()
    seqs = tablet.sim.record("app_blocked", {"app": "org.example.VideoShorts"}) + \
        tablet.sim.record("dns_blocked", {"domain": "bad.example.com"})
    assert tablet.sim.upload(0).status_code == 200
    day = week_days()[-1]
    tablet.upload_summary(busy_day(day, seed=1))
    tablet.ask_more_time(10, "秘密笔记 secret note")

    page.goto(f"/#/data/{tablet.id}")
    holdings = page.get_by_test_id("holdings")
    expect(holdings).to_contain_text("Daily reports")
    row = holdings.locator("tr", has_text="Activity records")
    expect(row).to_contain_text(str(len(seqs)))
    with page.expect_download() as dl:
        page.get_by_test_id("export").click()
    data = json.loads(dl.value.path().read_text())
    assert [r["kind"] for r in data["journal"]] == ["app_blocked", "dns_blocked"]
    assert data["journal"][1]["data"] == {"domain": "bad.example.com"}
    assert data["summaries"][0]["day"] == day and data["summaries"][0]["used_seconds"] > 0
    assert data["requests"][0]["kind"] == RequestKind.MORE_TIME.value and data["requests"][0]["note"] == "秘密笔记 secret note"
    assert {m["type"] for m in data["messages"]} >= {"policy", "decision", "consent"}
    assert any(m["payload"] and m["payload"].get("kind") == "set_guardian_code" for m in data["messages"])

    page.reload()  # the audit log now shows the export
    expect(page.get_by_test_id("audit")).to_contain_text("downloaded the data")
    page.get_by_test_id("delete-data").click()
    page.locator("dialog input").fill("a fresh start")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("deleted")).to_be_visible(timeout=15_000)
    tablet.wait_until(lambda: tablet.deleted == ["a fresh start"])
    tablet.wait_until(lambda: any(a.type == "receipt" and a.result == "applied" for a in tablet.applied))
    page.reload()
    expect(page.get_by_test_id("holdings").locator("tr", has_text="Daily reports")).to_contain_text("0")
    expect(page.get_by_test_id("audit")).to_contain_text("deleted the data")


def test_consent_refused_at_pairing_keeps_optional_processing_off(
    page: Page, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    mum = sign_up(page, "Mum")
    tablet = make_tablet()
    code = tablet.pairing_code()
    page.goto("/#/pair")
    page.get_by_test_id("pair-code").fill(code)
    page.get_by_test_id("pair-continue").click()
    assert tablet.reveal() == page.get_by_test_id("sas").inner_text().replace(" ", "")
    page.get_by_test_id("sas-match").click()
    page.get_by_test_id("consent-refuse").click()
    tablet.confirm_pairing()
    expect(page.get_by_test_id("pair-done")).to_be_visible(timeout=30_000)
    assert tablet.consent is not None and not tablet.consent.accepted and not tablet.consent.usage_reports
    assert tablet.policy is not None  # basic functions work: the rules arrived
    tablet.sim.record("lock", {"reason": "budget"})
    assert tablet.sim.upload(0).status_code == 403  # no journal uploads without consent
    page.goto(f"/#/data/{tablet.id}")
    expect(page.get_by_test_id("consent-version")).to_contain_text("refused")
    assert mum.label == "Mum"


def test_the_language_is_switchable_and_remembered(page: Page) -> None:
    page.goto("/#/login")
    expect(page.get_by_test_id("login")).to_have_text("Log in")
    page.get_by_test_id("lang").select_option("zh-CN")
    expect(page.get_by_test_id("login")).to_have_text("登录")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.reload()
    expect(page.get_by_test_id("login")).to_have_text("登录")
    page.get_by_test_id("lang").select_option("en")
    expect(page.get_by_test_id("login")).to_have_text("Log in")
