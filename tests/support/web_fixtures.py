"""pytest fixtures for the guardian web app's tests (tests/web, tests/bench): the real dashboard
server on loopback (SQLite) serving the built app, Debian's Chromium driven by Playwright,
and tablets (simulated until the agent's sync client lands)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from support.browser import Browser, launch_browser
from support.dashboard_server import ThreadServer, server_settings
from support.simulated_device import SimulatedDevice

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dashboard" / "web" / "dist"
ARTIFACTS = ROOT / "tests" / "web" / "artifacts"



@pytest.fixture(scope="session")
def dist() -> Path:
    if not (DIST / "index.html").is_file():
        pytest.fail(f"{DIST} is not built: run scripts/setup (it runs npm ci and the Vite build)")
    return DIST


@pytest.fixture(scope="module")
def web_server(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    db = tmp_path_factory.mktemp("web-db") / "dashboard.sqlite"
    srv = ThreadServer(server_settings(f"sqlite:///{db}", static_dir=dist)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_browser() as b:
        yield b


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def make_tablet(web_server: ThreadServer, tmp_path: Path) -> Iterator[Callable[..., SimulatedDevice]]:
    """Tablets for a test. Today a SimulatedDevice (tests/support/simulated_device.py); when the
    device's sync client lands (issue 14), this is where the agent in development mode is
    started instead: it must offer the same `Device` interface."""
    made: list[SimulatedDevice] = []

    def make(label: str = "ET-10") -> SimulatedDevice:
        d = SimulatedDevice(web_server.url, tmp_path / f"tablet{len(made)}", label)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def page(browser: Browser, web_server: ThreadServer) -> Iterator[Page]:
    p = browser.page(web_server.url)
    yield p
    p.context.close()


@pytest.fixture(scope="module")
def selftest(browser: Browser, web_server: ThreadServer) -> Iterator[Page]:
    """The built app's crypto self-test page (window.mmSelftest: the crypto and policy modules)."""
    page = browser.page(web_server.url, phone=False)
    page.goto("/selftest.html")
    page.locator("#status", has_text="ready").wait_for()
    yield page
    page.context.close()
