"""The guardian's app with the real tablet: the agent in development mode, syncing with the
dashboard that serves the app. Sign up in Chromium; pair by the code the tablet shows, the
SAS compared with the tablet's; a one-minute budget signed in the browser locks the
simulated child; the child asks for more time; the guardian's "15 min" tap unlocks the
tablet (measured); the week's report shows the minutes the tablet counted.

The browser's timezone (which becomes the policy's) is one where it is now late morning,
so the run never meets a night curfew, whatever the hour of the CI machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from support.agent_process import AgentBus, AgentProcess
from support.browser import Browser
from support.dashboard_server import ThreadServer
from support.web_flows import expect_applied, pair, send_budget, sign_up

ZONES = ["Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver", "America/Chicago",
         "America/New_York", "America/Halifax", "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Azores",
         "Europe/London", "Europe/Paris", "Europe/Athens", "Europe/Moscow", "Asia/Dubai", "Asia/Karachi",
         "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane", "Pacific/Noumea",
         "Pacific/Auckland"]


def late_morning_zone() -> str:
    now = datetime.now(UTC)
    return min(ZONES, key=lambda z: abs(now.astimezone(ZoneInfo(z)).hour * 60 + now.astimezone(ZoneInfo(z)).minute
                                        - 10 * 60))


class RealTablet:
    """The agent behind the few calls the web journeys make of a tablet."""

    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent
        self.bus = AgentBus(agent.address)
        self.bus.call("/org/minormode/Guardian1", "org.minormode.Guardian1", "StartPairing")

    @property
    def id(self) -> str:
        return str(self.bus.trust()["DeviceId"])

    def pairing_code(self) -> str:
        self.bus.until("the tablet's pairing code", lambda b: bool(b.trust()["Code"]))
        return str(self.bus.trust()["Code"])

    def reveal(self, wait: float = 20) -> str:
        self.bus.until("the tablet's SAS", lambda b: bool(b.trust()["Sas"]), timeout=wait)
        return str(self.bus.trust()["Sas"])

    def confirm_pairing(self, wait: float = 20) -> None:
        self.bus.call("/org/minormode/Guardian1", "org.minormode.Guardian1", "ConfirmPairing", "b", [True])
        self.bus.until("paired", lambda b: bool(b.trust()["Paired"]), timeout=wait)

    def status(self) -> dict[str, Any]:
        return self.bus.status()


@pytest.fixture
def tablet(tmp_path: Path, web_server: ThreadServer) -> Iterator[RealTablet]:
    agent = AgentProcess(tmp_path / "tablet", "--dashboard", web_server.url, speed=10).start()
    t = RealTablet(agent)
    try:
        yield t
    finally:
        t.bus.close()
        assert agent.stop() == 0


def test_the_app_pairs_rules_and_answers_the_real_tablet(browser: Browser, web_server: ThreadServer,
                                                          tablet: RealTablet) -> None:
    zone = late_morning_zone()
    page: Page = browser.page(web_server.url, timezone_id=zone)
    try:
        mum = sign_up(page, "Mum")
        # the tablet lives where it is late morning now: the curfew never decides, whatever the hour
        pair(mum, tablet, timezone=zone)  # type: ignore[arg-type]  # the journeys' tablet interface
        send_budget(mum, tablet, 1)  # type: ignore[arg-type]
        expect_applied(page)
        tablet.bus.until("locked by the one-minute budget", lambda b: b.status()["Locked"], timeout=60)
        assert tablet.status()["LockReason"] == "budget_spent" and tablet.status()["PolicySigner"] == "Mum"
        [asked] = tablet.agent.as_child({"member": "RequestMoreTime", "signature": "us",
                                         "args": [30, "作业还没做完"]})
        assert asked["ok"], asked
        page.get_by_test_id("nav-requests").click()
        card = page.locator("[data-kind=more_time]")
        expect(card).to_contain_text("作业还没做完", timeout=20_000)
        tap = time.monotonic()
        card.get_by_test_id("grant-15").click()
        tablet.bus.until("unlocked by the tap", lambda b: not b.status()["Locked"], timeout=20, step=0.01)
        print(f"\n[{zone}] tap -> the real tablet unlocked: {(time.monotonic() - tap) * 1000:.0f} ms")
        expect_applied(page)
        # the tablet uploads its day's summary every five minutes of its (10x) clock
        deadline = time.monotonic() + 90
        page.goto(f"/#/reports/{tablet.id}")
        while page.get_by_test_id("week-total").inner_text(timeout=20_000) == "0 min":
            assert time.monotonic() < deadline, "the report never showed the tablet's minutes"
            page.wait_for_timeout(2000)  # the page is read again, as a guardian would reload it
            page.reload()
        assert page.get_by_test_id("week-total").inner_text().endswith("min")
    finally:
        page.context.close()
