"""The live requests screen when a redraw fails: the failure is shown (the list may be stale)
and the screen draws again on the next event and when the page comes back into view, so a
request is never hidden behind "Nothing is waiting" for good. The server is made unreachable
for the request list only (the browser's network refuses it), everything else is real."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, Route, expect
from support.simulated_device import SimulatedDevice
from support.web_flows import pair, sign_up

REQUEST_LIST = re.compile(r"/api/v1/families/[0-9a-f]+/devices/[0-9a-f]+/requests\?status=all$")


def _unreachable(route: Route) -> None:
    route.abort("connectionrefused")


def test_a_failed_redraw_is_shown_and_the_next_chance_draws_again(
        page: Page, make_tablet: Callable[..., SimulatedDevice]) -> None:
    tablet = make_tablet("ET-10")
    pair(sign_up(page, "Mum"), tablet)
    tablet.start()
    page.get_by_test_id("nav-requests").click()
    expect(page.get_by_test_id("requests-none")).to_be_visible()

    # the list cannot be read when the request's event arrives: said so, not swallowed
    page.route(REQUEST_LIST, _unreachable)
    tablet.ask_more_time(30, "作业还没做完")
    expect(page.get_by_test_id("requests-error")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("requests-none")).to_be_visible()

    # the guardian comes back to the page: it draws again
    page.unroute(REQUEST_LIST, _unreachable)
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("[data-kind=more_time]")).to_contain_text("作业还没做完", timeout=15_000)
    expect(page.get_by_test_id("requests-error")).to_have_count(0)

    # failing again, then the next event draws everything it missed
    page.route(REQUEST_LIST, _unreachable)
    tablet.ask_to_buy("org.example.Store", "Gems x100", 3000)
    expect(page.get_by_test_id("requests-error")).to_be_visible(timeout=15_000)
    expect(page.locator("[data-kind=purchase]")).to_have_count(0)
    page.unroute(REQUEST_LIST, _unreachable)
    tablet.report("help", "I need help")
    expect(page.locator("[data-kind=purchase]")).to_contain_text("Gems x100", timeout=15_000)
    expect(page.locator("[data-kind=report]")).to_be_visible()
    expect(page.get_by_test_id("requests-error")).to_have_count(0)
    # the aborted requests are the only console errors (Chromium logs each refused fetch)
    assert all("ERR_CONNECTION_REFUSED" in e or "Failed to fetch" in e for e in page.console_errors), page.console_errors
