"""Debian's Chromium, headless, driven by Playwright from PyPI (never `playwright install`:
it would download a browser build, which this closed network refuses).

The flags keep Chromium from reaching out (background networking, component updates, sync,
QUIC: every one of them is refused here, many at a time, and slows the start) and let it run
as root (--no-sandbox). Playwright gives every launch a fresh temporary user-data dir.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser as PwBrowser
from playwright.sync_api import BrowserContext, Page, ViewportSize, sync_playwright

CHROMIUM = os.environ.get("MINORMODE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@dataclass
class Browser:
    browser: PwBrowser

    def context(self, base_url: str, *, locale: str = "en-US", phone: bool = True,
                timezone_id: str = "Asia/Shanghai", **kw: Any) -> BrowserContext:
        viewport = PHONE if phone else DESKTOP
        ctx = self.browser.new_context(
            base_url=base_url,
            locale=locale,
            viewport=viewport,
            device_scale_factor=2 if phone else 1,
            is_mobile=phone,
            has_touch=phone,
            timezone_id=timezone_id,
            **kw,
        )
        ctx.set_default_timeout(20_000)
        return ctx

    def page(self, base_url: str, **kw: Any) -> Page:
        page = self.context(base_url, **kw).new_page()
        watch_console(page)
        return page


def watch_console(page: Page) -> list[str]:
    """Collect console errors, uncaught exceptions and CSP violations: a test asserts there
    were none. Chromium's own line for an HTTP error status is left out: the app meets 401
    (not logged in yet) and 404 (no catalogue yet) by design and says so on the page."""
    errors: list[str] = []

    def on_console(m: Any) -> None:
        if m.type == "error" and not m.text.startswith("Failed to load resource: the server responded"):
            errors.append(m.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.console_errors = errors  # type: ignore[attr-defined]
    return errors


@contextlib.contextmanager
def launch_browser(extra_args: list[str] | None = None) -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS + (extra_args or []))
        try:
            yield Browser(browser)
        finally:
            browser.close()


def fake_camera_y4m(path: Path, text: str, *, width: int = 640, height: int = 480, frames: int = 3) -> Path:
    """A Y4M video of a QR code holding `text`, for Chromium's fake camera
    (--use-file-for-fake-video-capture): what the tablet's pairing screen shows to a phone."""
    import segno

    qr = segno.make_qr(text, error="m")
    matrix = [list(row) for row in qr.matrix]
    n = len(matrix) + 8  # quiet zone of 4 modules each side
    scale = min(width, height) * 8 // 10 // n
    left, top = (width - n * scale) // 2, (height - n * scale) // 2
    y = bytearray(b"\xff" * (width * height))
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + (r + 4) * scale + dy) * width + left + (c + 4) * scale
                    y[start:start + scale] = b"\x10" * scale
    chroma = b"\x80" * (width * height // 4)
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + bytes(y) + chroma + chroma)
    return path
