"""The rules editor, the offline guardian code and the account screens in Chromium against
the real server and a tablet: what the editor sends is what the agent's parser reads back;
a mistake is shown before anything is sent; the code on the screen is the tablet's code and
comes back from the delivery history in a fresh browser; log-out leaves no key behind; the
recovery key sets a new password."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from support.browser import Browser
from support.dashboard_server import ThreadServer
from support.simulated_device import SimulatedDevice
from support.web_flows import CATALOGUE, PASSWORD, expect_applied, log_in, log_out, pair, sign_up

from agent.core.guardian_code import code_for_counter
from agent.core.policy import ClockRange, DefaultKey, TimeUpMode


def _queued(server: ThreadServer, device: str) -> int:
    from dashboard.db.schema import messages

    with server.state.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)
                                .where(messages.c.device_id == device)).scalar() or 0)


def _rules_of_a_paired_tablet(page: Page, make_tablet: Callable[..., SimulatedDevice]) -> SimulatedDevice:
    """Sign up, pair a tablet that sent its app catalogue, open its rules editor."""
    tablet = make_tablet()
    pair(sign_up(page, "Mum"), tablet)
    tablet.upload_catalogue(CATALOGUE)
    tablet.start()
    page.goto(f"/#/rules/{tablet.id}")
    return tablet


def _two_windows(page: Page, day: str, times: tuple[str, str, str, str], *, adds: int) -> None:
    """Switch a day of a weekly editor on and give it two windows, the second across midnight."""
    page.get_by_test_id(f"{day}-on").check()
    for _ in range(adds):
        page.get_by_test_id(f"{day}-add").click()
    inputs = page.get_by_test_id(day).locator("input[type=time]")
    for i, value in enumerate(times):
        inputs.nth(i).fill(value)
    expect(page.get_by_test_id(day)).to_contain_text("until the next day")


def test_the_rules_editor_sends_what_the_agent_reads(page: Page, web_server: ThreadServer,
                                                      make_tablet: Callable[..., SimulatedDevice]) -> None:
    tablet = _rules_of_a_paired_tablet(page, make_tablet)
    _two_windows(page, "sched-mon", ("07:00", "07:45", "20:00", "01:00"), adds=2)
    page.get_by_test_id("app-limit-org.example.Minecraft").fill("30")
    page.get_by_test_id("app-rule-org.example.Homework").select_option("always_allowed")
    page.get_by_test_id("app-rule-org.example.VideoShorts").select_option("blocked")
    page.get_by_test_id("waive-curfew").check()
    page.get_by_test_id("filter-block").fill("example-bad.com\nOther-Bad.net.")

    # a mistake is caught in the page, and nothing is sent
    before = _queued(web_server, tablet.id)
    page.get_by_test_id("spend-tx").fill("80")
    page.get_by_test_id("spend-day").fill("50")
    page.get_by_test_id("rules-send").click()
    expect(page.get_by_test_id("rules-invalid")).to_be_visible()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    assert _queued(web_server, tablet.id) == before

    page.get_by_test_id("spend-tx").fill("20")
    page.get_by_test_id("spend-month").fill("200")
    page.get_by_test_id("spend-ask").fill("10")
    page.get_by_test_id("rules-send").click()
    expect_applied(page)
    pol = tablet.policy
    assert pol is not None and pol.version == 2
    assert pol.schedule.windows[0] == (ClockRange(420, 465), ClockRange(1200, 60))
    assert pol.schedule.windows[1] is None  # Tuesday not limited
    assert dict(pol.apps.limits_minutes) == {"org.example.Minecraft": 30}
    assert "org.example.Homework" in pol.apps.always_allowed and "org.example.VideoShorts" in pol.apps.blocked
    assert DefaultKey.CURFEW in pol.waived
    assert (pol.spending.per_transaction, pol.spending.per_day, pol.spending.per_month, pol.spending.ask_above) == \
        (2000, 5000, 20000, 1000)
    assert pol.filter.block_domains == frozenset({"example-bad.com", "other-bad.net"})
    # the editor reopens the policy in force (sealed to the guardians too) with those values
    page.reload()
    expect(page.get_by_test_id("app-limit-org.example.Minecraft")).to_have_value("30")
    expect(page.get_by_test_id("waive-curfew")).to_be_checked()

    # a refusal is shown with the device's reason
    tablet.refuse_next = "policy v3: budget.daily_minutes: refused for the test"
    page.get_by_test_id("budget-daily").fill("45")
    page.get_by_test_id("rules-send").click()
    delivery = page.get_by_test_id("delivery").last
    expect(delivery).to_have_attribute("data-state", "refused", timeout=30_000)
    expect(delivery).to_contain_text("refused for the test")
    assert tablet.policy is not None and tablet.policy.version == 2

    # the home screen says which version is in force from the tablet's signed ack only:
    # an ack the server altered is flagged, not believed
    page.goto("/#/home")
    expect(page.get_by_test_id("policy-in-force")).to_contain_text("version 2")
    from dashboard.db.schema import messages

    with web_server.state.db.write() as conn:
        rows = conn.execute(select(messages.c.id, messages.c.ack).where(
            messages.c.device_id == tablet.id, messages.c.type == "policy", messages.c.seq == 2)).all()
        ack = json.loads(rows[0].ack)
        ack["sig"] = ("A" if ack["sig"][0] != "A" else "B") + ack["sig"][1:]
        conn.execute(messages.update().where(messages.c.id == rows[0].id).values(ack=json.dumps(ack)))
    page.reload()
    expect(page.get_by_test_id("policy-bad")).to_contain_text("failed the checks")


def test_time_up_emergency_apps_and_game_hours_reach_the_agent(page: Page, make_tablet: Callable[..., SimulatedDevice]) -> None:
    """What happens when time is up, how long a session may stay unlocked, the apps and
    categories left in a curfew or lock, and the game hours (several windows a day, across
    midnight): shown with the band's defaults, checked as the agent checks, read back by it."""
    tablet = _rules_of_a_paired_tablet(page, make_tablet)
    # the band's defaults (agent/core/bands.py) as the editor shows them
    expect(page.get_by_test_id("time-up")).to_have_value("limited")
    expect(page.get_by_test_id("lock-grace")).to_have_value("60")
    expect(page.get_by_test_id("apps-emergency-categories")).to_have_value("Emergency, Accessibility, X-Minormode-System")
    expect(page.get_by_test_id("games-fri-on")).to_be_checked()
    expect(page.get_by_test_id("games-mon-on")).not_to_be_checked()

    page.get_by_test_id("time-up").select_option("lock")
    page.get_by_test_id("lock-grace").fill("5")  # below the agent's 15 s: caught here
    page.get_by_test_id("rules-send").click()
    expect(page.get_by_test_id("rules-invalid")).to_be_visible()
    expect(page.get_by_test_id("lock-grace")).to_have_attribute("aria-invalid", "true")

    page.get_by_test_id("lock-grace").fill("120")
    page.get_by_test_id("app-emergency-org.example.Homework").check()
    page.get_by_test_id("apps-emergency-categories").fill("Emergency, Telephony")
    _two_windows(page, "games-mon", ("16:00", "17:00", "23:30", "00:30"), adds=1)
    page.get_by_test_id("games-sun-on").uncheck()
    page.get_by_test_id("rules-send").click()
    expect_applied(page)

    pol = tablet.policy  # parsed by the agent's own parser on the tablet's side
    assert pol is not None and pol.version == 2
    assert pol.enforcement.time_up is TimeUpMode.LOCK and pol.enforcement.lock_grace_seconds == 120
    assert pol.apps.emergency == frozenset({"org.example.Homework"})
    assert pol.apps.emergency_categories == frozenset({"Emergency", "Telephony"})
    assert pol.games.ranges[0] == (ClockRange(960, 1020), ClockRange(1410, 30))
    assert pol.games.ranges[4] == pol.games.ranges[5] == (ClockRange(1200, 1260),)  # the band's Fri, Sat
    assert pol.games.ranges[6] == ()  # Sunday: no game hours
    assert tablet.policy_mapping is not None
    assert tablet.policy_mapping["enforcement"] == {"time_up": "lock", "lock_grace_seconds": 120}
    # reopened from the policy in force
    page.reload()
    expect(page.get_by_test_id("time-up")).to_have_value("lock")
    expect(page.get_by_test_id("lock-grace")).to_have_value("120")
    expect(page.get_by_test_id("app-emergency-org.example.Homework")).to_be_checked()
    expect(page.get_by_test_id("games-sun-on")).not_to_be_checked()
    expect(page.get_by_test_id("games-mon").locator("input[type=time]")).to_have_count(4)


def _shown_code(page: Page) -> str:
    code = page.get_by_test_id("guardian-code")
    code.wait_for()
    value = code.get_attribute("data-code")
    assert value is not None
    return value


def test_the_guardian_code_is_the_tablets_and_comes_back_from_the_history(
    page: Page, browser: Browser, web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    mum = sign_up(page, "Mum")
    tablet = make_tablet()
    pair(mum, tablet)
    assert tablet.code_secret is not None
    page.goto(f"/#/code/{tablet.id}")
    shown = _shown_code(page)
    step = int(time.time()) // 30
    assert shown in {code_for_counter(tablet.code_secret, s) for s in (step - 1, step, step + 1)}
    # a fresh browser: nothing in IndexedDB; the secret is reopened from the sealed history
    other = browser.page(web_server.url, phone=False)
    log_in(other, mum.email)
    other.goto(f"/#/code/{tablet.id}")
    assert _shown_code(other) in {code_for_counter(tablet.code_secret, s) for s in (step, step + 1, step + 2)}
    other.context.close()


def test_logout_forgets_the_keys_and_the_recovery_key_sets_a_new_password(page: Page) -> None:
    mum = sign_up(page, "Mum")
    page.get_by_test_id("nav-settings").click()
    log_out(page)
    held = page.evaluate("""() => new Promise((resolve) => {
        const r = indexedDB.open('minormode');
        r.onsuccess = () => { const tx = r.result.transaction('identity', 'readonly');
                              const c = tx.objectStore('identity').count(); c.onsuccess = () => resolve(c.result); };
        r.onerror = () => resolve(-1); })""")
    assert held == 0
    # a wrong password is refused with a message
    page.get_by_test_id("email").fill(mum.email)
    page.get_by_test_id("password").fill("not the password at all")
    page.get_by_test_id("login").click()
    expect(page.get_by_test_id("form-error")).to_be_visible(timeout=30_000)
    # the recovery key (shown once at sign-up) opens the keys and sets a new password
    page.goto("/#/recover")
    page.get_by_test_id("email").fill(mum.email)
    page.get_by_test_id("recovery-input").fill(mum.recovery_key.lower().replace("-", " "))
    page.get_by_test_id("password").fill("a brand new passphrase")
    page.get_by_test_id("password2").fill("a brand new passphrase")
    page.get_by_test_id("recover").click()
    page.get_by_test_id("nav-home").wait_for(timeout=60_000)
    page.get_by_test_id("nav-settings").click()
    log_out(page)
    log_in(page, mum.email, "a brand new passphrase")
    page.get_by_test_id("nav-settings").click()
    log_out(page)
    page.get_by_test_id("email").fill(mum.email)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("login").click()
    expect(page.get_by_test_id("form-error")).to_be_visible(timeout=30_000)


def _fill_windows(page: Page, testid: str, values: list[str]) -> None:
    """Make the day's window list hold exactly `values` ("HH:MM-HH:MM")."""
    days = page.get_by_test_id(testid)
    while days.locator("li").count() < len(values):
        page.get_by_test_id(f"{testid}-add").click()
    while days.locator("li").count() > len(values):
        days.locator("li").last.get_by_role("button").click()
    times = days.locator("input[type=time]")
    for i, window in enumerate(values):
        start, end = window.split("-")
        times.nth(2 * i).fill(start)
        times.nth(2 * i + 1).fill(end)


def test_school_hours_and_curfew_per_day_with_several_windows(
    page: Page, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    mum = sign_up(page, "Mum")
    tablet = make_tablet()
    pair(mum, tablet)
    tablet.start()
    page.goto(f"/#/rules/{tablet.id}")
    # school: a lunch break on Monday, copied to the other weekdays; Friday ends at noon;
    # a Saturday morning class
    page.get_by_test_id("school-on").check()
    _fill_windows(page, "school-mon", ["08:00-12:00", "13:30-16:30"])
    page.get_by_test_id("school-copy").click()
    _fill_windows(page, "school-fri", ["08:00-12:00"])
    page.get_by_test_id("school-sat-on").check()
    _fill_windows(page, "school-sat", ["09:00-11:00"])
    # curfew: later at the weekend, two windows on Sunday, none on Saturday
    for day in ("mon", "tue", "wed", "thu", "fri"):
        _fill_windows(page, f"curfew-{day}", ["21:30-06:30"])
    page.get_by_test_id("curfew-sat-on").uncheck()
    _fill_windows(page, "curfew-sun", ["13:00-14:00", "21:00-07:00"])
    page.get_by_test_id("rules-send").click()
    expect_applied(page)

    pol = tablet.policy
    assert pol is not None
    mon_thu = (ClockRange(480, 720), ClockRange(810, 990))
    assert pol.school.enabled
    assert pol.school.ranges == (mon_thu, mon_thu, mon_thu, mon_thu, (ClockRange(480, 720),), (ClockRange(540, 660),), ())
    night = (ClockRange(1290, 390),)
    assert pol.curfew.ranges == (night, night, night, night, night, (), (ClockRange(780, 840), ClockRange(1260, 420)))
    # the policy says it in the fewest keys, and the editor reopens it as it was sent
    sent = tablet.policy_mapping
    assert sent is not None and sent["curfew"] == {"weekdays": ["21:30-06:30"], "sat": [],
                                                   "sun": ["13:00-14:00", "21:00-07:00"]}
    page.reload()
    expect(page.get_by_test_id("school-tue").locator("li")).to_have_count(2)
    expect(page.get_by_test_id("school-sun-on")).not_to_be_checked()
    expect(page.get_by_test_id("curfew-sat-on")).not_to_be_checked()
    expect(page.get_by_test_id("curfew-sun").locator("li")).to_have_count(2)


def test_changing_the_password_rewraps_the_same_keys(page: Page, browser: Browser, web_server: ThreadServer) -> None:
    mum = sign_up(page, "Mum")
    other = browser.page(web_server.url, phone=False)  # another browser, logged in before the change
    log_in(other, mum.email)
    page.get_by_test_id("nav-settings").click()
    kid = page.get_by_test_id("settings-screen").locator("code.fp").inner_text()
    page.get_by_test_id("to-password").click()
    # a wrong current password is refused here, and nothing is sent
    page.get_by_test_id("current-password").fill("not the password at all")
    page.get_by_test_id("new-password").fill("a brand new passphrase")
    page.get_by_test_id("password2").fill("a brand new passphrase")
    page.get_by_test_id("password-change").click()
    expect(page.get_by_test_id("password-screen")).to_contain_text("not the current password")
    page.get_by_test_id("current-password").fill(PASSWORD)
    page.get_by_test_id("password-change").click()
    expect(page.get_by_test_id("password-changed")).to_be_visible(timeout=60_000)
    # the session that changed it goes on; the other browser's ended
    page.get_by_test_id("nav-home").click()
    page.get_by_test_id("nav-settings").click()
    other.reload()
    other.get_by_test_id("login").wait_for(timeout=30_000)
    other.context.close()
    log_out(page)
    log_in(page, mum.email, "a brand new passphrase")
    page.get_by_test_id("nav-settings").click()
    # the same keys, wrapped again: the fingerprint the family knows is unchanged
    assert page.get_by_test_id("settings-screen").locator("code.fp").inner_text() == kid
    log_out(page)
    page.get_by_test_id("email").fill(mum.email)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("login").click()
    expect(page.get_by_test_id("form-error")).to_be_visible(timeout=30_000)
