"""Pairing through the tablet's QR code (PROTOCOL.md §7.3): the phone scans it with its
camera (Chromium's fake camera playing a video of the code; jsQR decodes it in the page),
or a camera app opens its link; either way the browser checks the revealed keys against the
device id in the code and MACs its own keys with the code's secret, which the tablet
verifies (so it needs no SAS confirmation). A wrong code is refused before anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect
from support.browser import fake_camera_y4m, launch_browser
from support.dashboard_server import ThreadServer
from support.simulated_device import SimulatedDevice
from support.web_flows import log_in, sign_up


def _finish(page: Page, tablet: SimulatedDevice) -> None:
    tablet.reveal()
    page.get_by_test_id("sas").wait_for()
    expect(page.locator(".lead")).to_contain_text("QR")
    page.get_by_test_id("sas-match").click()
    page.get_by_test_id("consent-accept").click()
    tablet.confirm_pairing()
    expect(page.get_by_test_id("pair-done")).to_be_visible(timeout=30_000)
    assert tablet.paired_by_qr, "the tablet verified the QR MAC"


def test_pairing_by_scanning_the_qr_code_with_the_camera(
    web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice], tmp_path: Path
) -> None:
    tablet = make_tablet("ET-QR")
    tablet.pairing_code()
    video = fake_camera_y4m(tmp_path / "qr.y4m", tablet.qr_url(web_server.url))
    flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
             f"--use-file-for-fake-video-capture={video}"]
    with launch_browser(flags) as b:
        ctx = b.context(web_server.url)
        ctx.grant_permissions(["camera"])
        page = ctx.new_page()
        sign_up(page, "Mum")
        page.goto("/#/pair")
        page.get_by_test_id("pair-scan").click()
        _finish(page, tablet)
        ctx.close()


def test_pairing_from_the_qr_link_after_logging_in(
    page: Page, web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    mum = sign_up(page, "Mum")
    page.get_by_test_id("nav-settings").click()
    page.get_by_test_id("logout").click()
    tablet = make_tablet("ET-LINK")
    tablet.pairing_code()
    url = tablet.qr_url(web_server.url)
    page.goto(url.replace(web_server.url, ""))
    assert "#v=1" not in page.url, "the secret leaves the address bar at once"
    log_in(page, mum.email)  # the pairing link waits in memory for the log-in
    _finish(page, tablet)


def test_a_qr_link_for_another_tablet_is_refused(
    page: Page, web_server: ThreadServer, make_tablet: Callable[..., SimulatedDevice]
) -> None:
    sign_up(page, "Mum")
    tablet, other = make_tablet("A"), make_tablet("B")
    tablet.pairing_code()
    other.pairing_code()
    forged = tablet.qr_url(web_server.url).replace(f"d={tablet.id}", f"d={other.id}")
    page.goto(forged.replace(web_server.url, ""))
    expect(page.get_by_test_id("pair-error")).to_contain_text("not the tablet", timeout=15_000)
