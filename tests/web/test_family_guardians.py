"""What a guardian admitted after pairing can do in Chromium against the real server and a
tablet: open the offline guardian code (its secret, sent at pairing sealed to the first
guardian only, is sealed again to every guardian when the second is admitted, and the
tablet keeps the same secret) and edit from the policy in force (sent again); and grant "the rest of today" up to the tablet's midnight
(the policy's timezone), not the browser's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect
from sqlalchemy import select
from support.browser import Browser
from support.dashboard_server import ThreadServer
from support.simulated_device import SimulatedDevice
from support.web_flows import expect_applied, invite_and_admit, pair, send_budget, sign_up

from agent.core.guardian_code import code_for_counter
from protocol.messages import SetGuardianCode


def _code_readers(server: ThreadServer, device: str) -> list[int]:
    """For each decision queued for the device, oldest first: how many keys it is sealed to."""
    from dashboard.db.schema import messages

    with server.state.db.read() as conn:
        rows = conn.execute(select(messages.c.content).where(messages.c.device_id == device, messages.c.type == "decision")
                            .order_by(messages.c.n)).all()
    return [len(json.loads(r.content)["wraps"]) for r in rows]


def _code_decisions(tablet: SimulatedDevice) -> int:
    return sum(1 for a in tablet.applied if a.result == "applied" and isinstance(a.payload, SetGuardianCode))


def _codes_now(secret: bytes) -> set[str]:
    step = int(time.time()) // 30
    return {code_for_counter(secret, s) for s in range(step - 1, step + 3)}


def test_a_guardian_admitted_later_opens_the_guardian_code(
    page: Page, browser: Browser, web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    mum = sign_up(page, "Mum")
    tablet = make_tablet()
    pair(mum, tablet)
    tablet.start()
    send_budget(mum, tablet, 45)
    expect_applied(page)
    secret = tablet.code_secret
    assert secret is not None
    # at pairing the secret went to the tablet and Mum only (what a later guardian cannot open)
    assert _code_readers(web_server, tablet.id) == [2]
    before = _code_decisions(tablet)

    dad = invite_and_admit(mum, browser.page(web_server.url, phone=False), web_server.url)
    tablet.wait_until(lambda: tablet.sim.keyring is not None and len(tablet.sim.keyring.guardians) == 2)
    # Mum's app sent the same secret again, sealed to the tablet, Mum and Dad
    assert _code_readers(web_server, tablet.id) == [2, 3]
    tablet.wait_until(lambda: _code_decisions(tablet) == before + 1)

    # ... and the policy in force again as the next version: Dad's editor starts from Mum's rules
    tablet.wait_until(lambda: tablet.policy is not None and tablet.policy.version == 3)
    assert tablet.policy_mapping is not None and tablet.policy_mapping["budget"] == {"daily_minutes": 45}
    dad.page.goto(f"/#/rules/{tablet.id}")
    expect(dad.page.get_by_test_id("budget-daily")).to_have_value("45")

    dad.page.goto(f"/#/code/{tablet.id}")
    code = dad.page.get_by_test_id("guardian-code")
    code.wait_for()
    assert code.get_attribute("data-code") in _codes_now(secret)
    # the tablet holds the same secret: codes shown before the admission still work offline
    assert tablet.code_secret == secret
    dad.page.context.close()


def _left_today(zone: str, at: datetime) -> int:
    local = at.astimezone(ZoneInfo(zone))
    return max(1, min(720, 1440 - (local.hour * 60 + local.minute)))


TABLET_ZONE = "Asia/Shanghai"
ELSEWHERE = ["Pacific/Kiritimati", "Asia/Kolkata", "Europe/London", "America/Sao_Paulo", "America/New_York",
             "America/Los_Angeles", "Pacific/Honolulu", "Asia/Tokyo", "Australia/Sydney"]


def test_rest_of_today_ends_at_the_tablets_midnight(
    browser: Browser, web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    now = datetime.now(UTC)
    # a guardian travelling where "the rest of today" is a different number of minutes
    away = max(ELSEWHERE, key=lambda z: abs(_left_today(z, now) - _left_today(TABLET_ZONE, now)))
    assert abs(_left_today(away, now) - _left_today(TABLET_ZONE, now)) >= 60
    page = browser.page(web_server.url, timezone_id=away)
    mum = sign_up(page, "Mum")
    tablet = make_tablet()
    pair(mum, tablet)
    tablet.start()
    page.goto(f"/#/rules/{tablet.id}")
    page.get_by_test_id("rules-timezone").select_option(TABLET_ZONE)
    page.get_by_test_id("rules-send").click()
    expect_applied(page)
    assert tablet.policy is not None and tablet.policy.timezone == TABLET_ZONE

    tablet.ask_more_time(30, "just this evening")
    page.goto("/#/requests")
    card = page.locator("[data-kind=more_time]")
    expect(card).to_contain_text("just this evening", timeout=15_000)
    before = _left_today(TABLET_ZONE, datetime.now(UTC))
    card.get_by_test_id("grant-day").click()
    tablet.wait_until(lambda: tablet.bonus_minutes > 0)
    after = _left_today(TABLET_ZONE, datetime.now(UTC))
    assert tablet.bonus_minutes in {before, after}, (tablet.bonus_minutes, before, after, away)
    page.context.close()
