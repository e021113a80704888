"""Every screen, at phone size (390x844) and desktop size, in zh-CN and en (chosen from the
browser's language), saved as PNG under tests/web/artifacts/screens/; axe-core on each at
phone size in both languages finds no serious or critical violation; the key sets of both
languages are identical and every key the code uses exists."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from support.browser import Browser
from support.dashboard_server import ThreadServer
from support.simulated_device import SimulatedDevice
from support.web_flows import Guardian, busy_child, log_in, pair, shot, sign_up

WEB = Path(__file__).resolve().parents[2] / "dashboard" / "web"
AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
LOCALES = {"zh-CN": "zh-CN", "en": "en-US"}
SIZES = {"phone": True, "desktop": False}


@pytest.fixture(scope="module")
def family(browser: Browser, web_server: ThreadServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Guardian, SimulatedDevice, str]]:
    """A guardian with a paired tablet, a week of a busy child's reports, open requests and an
    invitation accepted by a second guardian who waits to be admitted."""
    page = browser.page(web_server.url)
    mum = sign_up(page, "妈妈")
    tablet = SimulatedDevice(web_server.url, tmp_path_factory.mktemp("tablet"), "ET-10")
    pair(mum, tablet)
    tablet.start()
    busy_child(tablet)
    page.goto("/#/family")
    page.get_by_test_id("invite").click()
    link = page.get_by_test_id("invite-link").input_value()
    dad_page = browser.page(web_server.url)
    dad_page.goto(link.replace(web_server.url, ""))
    sign_up(dad_page, "Dad", via_link=True)
    dad_page.get_by_test_id("my-fingerprint").wait_for()
    yield mum, tablet, link.replace(web_server.url, "")
    tablet.close()
    page.context.close()
    dad_page.context.close()


def _axe(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text())
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


COLORS = {"chart-week": "#1f5fa8", "chart-apps": "#2e7d5b", "chart-hours": "#6a4fb3"}  # reports.js's bars


def _label_problems(chart: dict[str, Any], across: bool) -> list[str]:
    """What is wrong with a chart's category labels as drawn (text, centre, measured width):
    along the bottom (`across`) neighbours must not touch (slanted at 45°: their distance
    × sin 45° must hold a line) and none may leave the canvas; down the side (the apps) each
    needs a line's height and must fit its axis."""
    shown = [x for x in chart["labels"] if x is not None]
    px, problems = chart["fontPx"], []
    if not across:
        problems += [f"{t} ({w:.0f} px) wider than its axis ({chart['labelAxis']})" for t, _, w in shown if w > chart["labelAxis"]]
        problems += [f"{a[0]}/{b[0]} too close" for a, b in itertools.pairwise(shown) if abs(b[1] - a[1]) < px]
        return problems
    for a, b in itertools.pairwise(shown):
        gap = b[1] - a[1]
        if chart["rotate"] == 45 and gap * 0.7071 < px:
            problems.append(f"{a[0]}/{b[0]} slanted {gap:.1f} px apart")
        if chart["rotate"] == 0 and a[1] + a[2] / 2 > b[1] - b[2] / 2:
            problems.append(f"{a[0]}/{b[0]} overlap")
    for t, x, w in shown:
        left, right = (x - w * 0.7071, x) if chart["rotate"] == 45 else (x - w / 2, x + w / 2)
        if left < 0 or right > chart["width"]:
            problems.append(f"{t} outside ({left:.0f}..{right:.0f} of {chart['width']})")
    return problems


def _check_charts(page: Page, read_charts: Callable[[Page], dict[str, Any]], where: str) -> dict[str, Any]:
    """The report's three uPlot charts: 7 days (and the budget), the top 10 apps, 24 hours;
    each canvas holding its bars' colour; labels not overlapping and none outside its chart
    (measured in the real fonts, CJK included). Returns what was read."""
    charts = read_charts(page)
    assert {k: [len(s) for s in c["data"]] for k, c in charts.items()} == {"chart-week": [7, 7], "chart-apps": [10], "chart-hours": [24]}, where
    assert {k: c["colors"].get(COLORS[k], 0) > 200 for k, c in charts.items()} == dict.fromkeys(COLORS, True), where
    assert {k: _label_problems(c, k != "chart-apps") for k, c in charts.items()} == {k: [] for k in COLORS}, where
    assert len([x for x in charts["chart-week"]["labels"] if x]) == 7, (where, charts["chart-week"])  # every day named
    assert len([x for x in charts["chart-hours"]["labels"] if x]) >= 6, where
    return charts


def _screens(tablet: SimulatedDevice) -> list[tuple[str, str, str]]:
    """(name, route, test id that says the screen is drawn)."""
    d = tablet.id
    return [
        ("home", "/#/home", f"device-{d}"),
        ("requests", "/#/requests", "grant-15"),
        ("rules", f"/#/rules/{d}", "rules-send"),
        ("reports", f"/#/reports/{d}", "week-total"),
        ("code", f"/#/code/{d}", "guardian-code"),
        ("data", f"/#/data/{d}", "holdings"),
        ("family", "/#/family", "invitation-accepted"),
        ("settings", "/#/settings", "logout"),
        ("password", "/#/password", "password-change"),
        ("pair", "/#/pair", "pair-code"),
    ]


@pytest.mark.parametrize("language", list(LOCALES))
def test_every_screen_shot_in_both_sizes_and_axe_clean(
    browser: Browser, web_server: ThreadServer, family: tuple[Guardian, SimulatedDevice, str],
    artifacts: Path, language: str, make_tablet: Callable[..., SimulatedDevice],
    read_charts: Callable[[Page], dict[str, Any]],
) -> None:
    mum, tablet, _ = family
    out = artifacts / "screens"
    violations: dict[str, Any] = {}
    for size, phone in SIZES.items():
        ctx = browser.context(web_server.url, locale=LOCALES[language], phone=phone)
        page = ctx.new_page()
        from support.browser import watch_console

        watch_console(page)
        # signed out: log-in, sign-up, recovery
        for name, route, ready in (("login", "/#/login", "login"), ("signup", "/#/signup", "signup"),
                                   ("recover", "/#/recover", "recover")):
            page.goto(route)
            page.get_by_test_id(ready).wait_for()
            assert page.evaluate("document.documentElement.lang") == language
            shot(page, out, f"{name}-{language}-{size}")
            if phone:
                violations[name] = _axe(page)
            if phone and name == "login":  # a control: axe here does find what it should
                page.evaluate("() => document.querySelector('main').append(Object.assign(document.createElement('img'), {src: '/icon.svg'}))")
                assert [v["id"] for v in _axe(page)] == ["image-alt"]
                page.reload()
                page.get_by_test_id(ready).wait_for()
        log_in(page, mum.email)
        for name, route, ready in _screens(tablet):
            page.goto(route)
            page.get_by_test_id(ready).first.wait_for(timeout=30_000)
            if name == "reports":
                expect(page.get_by_test_id("reports-screen")).to_have_attribute("data-ready", "true")
                charts = _check_charts(page, read_charts, f"{language} {size}")
                if phone:  # a narrower phone (360 px): the charts follow their containers' size
                    page.set_viewport_size({"width": 360, "height": 780})
                    page.wait_for_function("(w) => document.querySelector('[data-testid=chart-week]').chart.width < w",
                                           arg=charts["chart-week"]["width"])
                    _check_charts(page, read_charts, f"{language} 360 px")
                    for chart in ("chart-week", "chart-hours"):
                        el = page.get_by_test_id(chart)
                        el.evaluate("(e) => e.scrollIntoView({ block: 'center' })")
                        el.screenshot(path=str(out / f"reports-{chart}-{language}-360.png"))
                    page.set_viewport_size({"width": 390, "height": 844})
                    page.wait_for_function("(w) => document.querySelector('[data-testid=chart-week]').chart.width === w",
                                           arg=charts["chart-week"]["width"])
                for chart in ("chart-week", "chart-apps", "chart-hours"):  # the bottom bar hides parts of the full page
                    el = page.get_by_test_id(chart)
                    el.evaluate("(e) => e.scrollIntoView({ block: 'center' })")
                    el.screenshot(path=str(out / f"reports-{chart}-{language}-{size}.png"))
            shot(page, out, f"{name}-{language}-{size}")
            if phone:
                violations[name] = _axe(page)
        # the pairing steps: the SAS comparison and the consent notice (with a second tablet)
        other = make_tablet(f"ET-{size}")
        code = other.pairing_code()
        page.goto("/#/pair")
        page.get_by_test_id("pair-code").fill(code)
        page.get_by_test_id("pair-continue").click()
        other.reveal()
        page.get_by_test_id("sas").wait_for()
        shot(page, out, f"pair-sas-{language}-{size}")
        if phone:
            violations["pair-sas"] = _axe(page)
        page.get_by_test_id("sas-match").click()
        page.get_by_test_id("notice-version").wait_for()
        shot(page, out, f"pair-consent-{language}-{size}")
        if phone:
            violations["pair-consent"] = _axe(page)
        page.get_by_test_id("pair-cancel").click()
        page.get_by_test_id("pair-aborted").wait_for()
        # the data screen's confirmation dialog
        page.goto(f"/#/data/{tablet.id}")
        page.get_by_test_id("unpair").click()
        page.locator("dialog").wait_for()
        shot(page, out, f"dialog-{language}-{size}")
        if phone:
            violations["dialog"] = _axe(page)
        page.keyboard.press("Escape")
        assert page.console_errors == [], page.console_errors  # type: ignore[attr-defined]
        ctx.close()
    bad = {k: [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in vs]
           for k, vs in violations.items() if vs}
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)
    assert len(list(out.glob(f"*-{language}-*.png"))) >= 2 * 15


def test_the_invitee_and_recovery_key_screens(browser: Browser, web_server: ThreadServer, artifacts: Path) -> None:
    for language, locale in LOCALES.items():
        for size, phone in SIZES.items():
            page = browser.context(web_server.url, locale=locale, phone=phone).new_page()
            page.goto("/#/signup")
            page.get_by_test_id("email").fill(f"shot-{language}-{size}@example.com")
            page.get_by_test_id("label").fill("Grandma")
            page.get_by_test_id("password").fill("correct horse battery staple")
            page.get_by_test_id("password2").fill("correct horse battery staple")
            page.get_by_test_id("signup").click()
            page.get_by_test_id("recovery-key").wait_for(timeout=60_000)
            shot(page, artifacts / "screens", f"recovery-key-{language}-{size}")
            if phone:
                assert _axe(page) == []
            page.context.close()


def _locale_keys() -> dict[str, dict[str, str]]:
    script = ("const [en, zh] = await Promise.all([import(process.argv[1]), import(process.argv[2])]);"
              "console.log(JSON.stringify({en: en.default, zh: zh.default}));")
    out = subprocess.run(["node", "--input-type=module", "-e", script, str(WEB / "src/locales/en.js"),
                          str(WEB / "src/locales/zh-CN.js")], capture_output=True, text=True, check=True)
    data: dict[str, dict[str, str]] = json.loads(out.stdout)
    return data


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    data = _locale_keys()
    en, zh = data["en"], data["zh"]
    assert set(en) == set(zh), {"only en": sorted(set(en) - set(zh)), "only zh-CN": sorted(set(zh) - set(en))}
    slot = re.compile(r"\{(\w+)\}")
    differ = {k: (en[k], zh[k]) for k in en if set(slot.findall(en[k])) != set(slot.findall(zh[k]))}
    assert not differ, differ
    untranslated = [k for k in en if en[k] == zh[k] and re.search(r"[A-Za-z]{4,}", en[k]) and not k.startswith("lang.")]
    assert len(untranslated) <= 3, untranslated  # app.name-like brand strings only


def test_every_key_the_code_uses_exists() -> None:
    keys = set(_locale_keys()["en"])
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in (WEB / "src").rglob("*.js"):
        if "locales" in path.parts:
            continue
        text = path.read_text()
        used |= set(re.findall(r"\bt\(\s*\"([a-z_.\-A-Z0-9]+)\"", text))
        prefixes |= set(re.findall(r"\bt\(\s*`([a-z_.]+)\$\{", text))
        for a, b in re.findall(r"\bt\(\s*\w+ \? \"([\w.]+)\" : \"([\w.]+)\"", text):
            used |= {a, b}
    missing = sorted(k for k in used if k not in keys)
    assert not missing, missing
    assert len(used) > 300
    for p in prefixes:
        assert any(k.startswith(p) for k in keys), p
