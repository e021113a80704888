"""Steps of the guardian's journeys through the real web app, shared by the end-to-end,
screenshot and performance tests: each drives the page the way a person would (labels,
buttons, the test ids of the app) and waits on what the page shows, never on time."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect

from support.simulated_device import SimulatedDevice

PASSWORD = "correct horse battery staple"
_n = itertools.count(1)


@dataclass
class Guardian:
    page: Page
    email: str
    label: str
    recovery_key: str = ""


def new_email(tag: str) -> str:
    return f"{tag}{next(_n)}@example.com"


def sign_up(page: Page, label: str = "Mum", email: str | None = None, *, via_link: bool = False) -> Guardian:
    """Sign up through the form; the recovery key is read once, then confirmed kept."""
    email = email or new_email(label.lower())
    if not via_link:
        page.goto("/")
        page.get_by_test_id("to-signup").click()
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("label").fill(label)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("password2").fill(PASSWORD)
    page.get_by_test_id("signup").click()
    key = page.get_by_test_id("recovery-key")
    key.wait_for(timeout=60_000)
    text = key.inner_text().strip()
    assert re.fullmatch(r"([A-Z2-7]{4}-){12}[A-Z2-7]{4}", text), text
    page.get_by_test_id("recovery-saved").check()
    page.get_by_test_id("recovery-continue").click()
    return Guardian(page, email, label, text)


def pair(g: Guardian, device: SimulatedDevice, *, band: str = "8-12", timezone: str = "Asia/Shanghai") -> str:
    """Pair by the typed code, comparing the SAS the page shows with the tablet's; the
    tablet's timezone chosen (the tablets of these tests live in Shanghai, whatever the
    browser's timezone)."""
    code = device.pairing_code()
    g.page.goto("/#/pair")
    g.page.get_by_test_id("pair-code").fill(code)
    g.page.get_by_test_id("pair-continue").click()
    tablet_sas = device.reveal()
    shown = g.page.get_by_test_id("sas")
    shown.wait_for()
    assert shown.inner_text().replace(" ", "") == tablet_sas, "the two screens must show the same SAS"
    g.page.get_by_test_id("sas-match").click()
    g.page.get_by_test_id("notice-version").wait_for()
    g.page.get_by_test_id("pair-band").select_option(band)
    g.page.get_by_test_id("pair-timezone").select_option(timezone)
    g.page.get_by_test_id("consent-accept").click()
    device.confirm_pairing()
    expect(g.page.get_by_test_id("pair-done")).to_be_visible(timeout=30_000)
    return tablet_sas


def invite_and_admit(existing: Guardian, new_page: Page, dashboard_url: str, label: str = "Dad") -> Guardian:
    """An existing guardian invites; the new one signs up from the link in `new_page`; the
    existing one admits them after the two fingerprints are compared."""
    page = existing.page
    page.goto("/#/family")
    page.get_by_test_id("invite").click()
    link = page.get_by_test_id("invite-link").input_value()
    new_page.goto(link.replace(dashboard_url, ""))
    newcomer = sign_up(new_page, label, via_link=True)
    fp = new_page.get_by_test_id("my-fingerprint")
    fp.wait_for()
    page.reload()
    accepted = page.get_by_test_id("invitation-accepted")
    expect(accepted).to_be_visible(timeout=15_000)
    assert page.get_by_test_id("invitee-fp").inner_text() == fp.inner_text(), "the fingerprints must match"
    accepted.get_by_test_id("admit").click()
    page.get_by_test_id("confirm").click()
    expect(new_page.get_by_test_id("invite-admitted")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("guardians")).to_contain_text(label)
    return newcomer


def send_budget(g: Guardian, device: SimulatedDevice, minutes: int) -> None:
    g.page.goto(f"/#/rules/{device.id}")
    g.page.get_by_test_id("budget-daily").fill(str(minutes))
    g.page.get_by_test_id("rules-send").click()


def expect_applied(page: Page, timeout: float = 30_000) -> None:
    expect(page.get_by_test_id("delivery").last).to_have_attribute("data-state", "applied", timeout=timeout)


def shot(page: Page, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_out(page: Page) -> None:
    """Settings' log-out, waited for: the app shows the login screen once the server ended the
    session (filling the form before that races the log-out, which would clear it)."""
    page.get_by_test_id("logout").click()
    page.get_by_test_id("login").wait_for(timeout=30_000)


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/#/login")
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("login").click()
    page.get_by_test_id("nav-home").wait_for(timeout=60_000)


def week_days(timezone: str = "Asia/Shanghai") -> list[str]:
    """The last seven local days, oldest first (what the report's week shows)."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    today = datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
    return [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]


CATALOGUE = [
    ("org.example.Homework", "作业本 Homework", ["Education"]),
    ("org.example.Minecraft", "Minecraft", ["Game"]),
    ("org.example.Browser", "Browser", ["Network"]),
    ("org.example.Store", "App Store", ["Utility"]),
    ("org.example.VideoShorts", "Video Shorts", ["AudioVideo"]),
    ("org.example.Paint", "Paint", ["Graphics"]),
]


def busy_child(device: SimulatedDevice) -> None:
    """A week of a busy child's sealed summaries, the app catalogue, and open requests."""
    from support.simulated_device import busy_day

    device.upload_catalogue(CATALOGUE)
    for i, day in enumerate(week_days()):
        device.upload_summary(busy_day(day, seed=i))
    device.ask_more_time(30, "作业做完了，可以再玩半小时吗？")
    device.ask_to_buy("org.example.Store", "Gems x100", 3000)
    device.report("bullying", "Someone in the class chat keeps being mean to me.")
