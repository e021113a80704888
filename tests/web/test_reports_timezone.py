"""The report's days are the tablet's (its policy's timezone, Asia/Shanghai), not the browser's:
a guardian whose browser is far from Shanghai (a trip, a phone set to another zone) sees the
same seven days and the same minutes as one at home. The browser's zone is picked, for the
hour the test runs at, so that its date differs from Shanghai's (else the test could not fail)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect
from support.browser import Browser, watch_console
from support.dashboard_server import ThreadServer
from support.simulated_device import SimulatedDevice
from support.web_flows import pair, sign_up, week_days

from protocol.messages import Summary

SHANGHAI = ZoneInfo("Asia/Shanghai")

def far_zone(now: datetime) -> str:
    """A timezone whose date is not Shanghai's now: UTC-12 (20 hours behind) until 19:00 in
    Shanghai, Kiritimati (UTC+14, 6 hours ahead) from then on; an hour's margin either way."""
    return "Etc/GMT+12" if now.astimezone(SHANGHAI).hour < 19 else "Pacific/Kiritimati"


def hours(minutes: int) -> tuple[int, ...]:
    """`minutes` of use from 08:00 on, as the summary's 24 hourly seconds (at most 3600 each)."""
    return tuple([0] * 8 + [min(minutes, 60) * 60, max(0, minutes - 60) * 60] + [0] * 14)


def test_far_zone_always_differs_in_date() -> None:
    for hour in range(24):
        at = datetime(2026, 12, 1, hour, 30, tzinfo=SHANGHAI)
        assert at.astimezone(ZoneInfo(far_zone(at))).date() != at.date(), hour


def test_the_week_is_the_tablets_days_whatever_the_browsers_timezone(
        browser: Browser, web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice],
        read_charts: Callable[[Page], dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    zone = far_zone(now)
    ctx = browser.context(web_server.url, timezone_id=zone)
    page = ctx.new_page()
    errors = watch_console(page)
    assert page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone") == zone
    tablet = make_tablet("ET-10")
    pair(sign_up(page, "Mum"), tablet, timezone="Asia/Shanghai")
    assert tablet.policy is not None and tablet.policy.timezone == "Asia/Shanghai"
    # seven Shanghai days, each with its own minutes (a week shifted by a day has another total);
    # the third day without a budget
    days = week_days("Asia/Shanghai")
    for i, day in enumerate(days):
        minutes = 10 * (i + 1)
        budget = None if i == 2 else 120 * 60
        tablet.upload_summary(Summary(day, "Asia/Shanghai", minutes * 60, budget, {"org.example.Game": minutes * 60},
                                      hours(minutes), {}, {}, (), 0, {}, 1))
    page.goto(f"/#/reports/{tablet.id}")
    expect(page.get_by_test_id("week-total")).to_have_text("4 h 40 min")  # 10 + 20 + ... + 70 minutes
    page.get_by_test_id("week-total").locator("xpath=..").locator("details summary").click()
    rows = page.get_by_test_id("per-day-table").locator("tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.last).to_contain_text("1 h 10 min")  # Shanghai's today, the newest day shown
    expect(page.get_by_test_id("reports-bad")).to_have_count(0)
    # the charts (uPlot): the Shanghai days' minutes, the budget's seven points (none on the
    # third day: the line spans it), one app, 24 hours of the newest day (60 at 08:00, 10 at 09:00)
    expect(page.get_by_test_id("reports-screen")).to_have_attribute("data-ready", "true")
    charts = read_charts(page)
    assert charts["chart-week"]["data"] == [[10, 20, 30, 40, 50, 60, 70], [120, 120, None, 120, 120, 120, 120]]
    assert charts["chart-apps"]["data"] == [[280]]
    assert [label[0] for label in charts["chart-apps"]["labels"]] == ["org.example.Game"]
    assert charts["chart-hours"]["data"] == [[0] * 8 + [60, 10] + [0] * 14]
    # drawn: each chart's canvas holds its bars' colour, the week's also the budget's line
    for chart, color in (("chart-week", "#1f5fa8"), ("chart-week", "#b3261e"), ("chart-apps", "#2e7d5b"), ("chart-hours", "#6a4fb3")):
        assert charts[chart]["colors"].get(color, 0) > 100, (chart, color, charts[chart]["colors"])
    hour_pixels = charts["chart-hours"]["colors"]["#6a4fb3"]
    # another day picked: the hourly chart redrawn with that day's hours (the oldest: 10 minutes)
    page.get_by_role("group", name="Day").get_by_role("button").first.click()
    expect(page.get_by_test_id("chart-hours")).to_have_attribute("aria-label", re.compile(r"10 min in all"))
    hours_after = read_charts(page)["chart-hours"]
    assert hours_after["data"] == [[0] * 8 + [10] + [0] * 15]
    assert 0 < hours_after["colors"]["#6a4fb3"] < hour_pixels / 3  # 10 minutes of bar where there were 70
    assert errors == []
    ctx.close()
