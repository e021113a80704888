"""What the server serves of the app: every script and stylesheet the HTML names carries
Subresource Integrity that matches the bytes served; no inline script or style; the CSP
header; the QR and invitation link paths open the same app."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
from support.dashboard_server import ThreadServer


def test_sri_csp_and_the_link_paths(web_server: ThreadServer) -> None:
    with httpx.Client(base_url=web_server.url, follow_redirects=True) as http:
        for path in ("/", "/pair/", "/invite/", "/selftest.html"):
            r = http.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
            html = r.text
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
            assert "<style" not in html and ' style="' not in html, "an inline style"
            tags = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=\"(/assets/[^\"]+)\"[^>]*>", html)
            assert tags, path
            for tag in re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=\"/assets/[^\"]+\"[^>]*>", html):
                url = re.search(r"(?:src|href)=\"([^\"]+)\"", tag)
                sri = re.search(r"integrity=\"sha384-([^\"]+)\"", tag)
                assert url and sri, f"{path}: {tag} has no integrity"
                body = http.get(url[1]).content
                assert base64.b64encode(hashlib.sha384(body).digest()).decode() == sri[1], url[1]
        assert http.get("/pair").url.path == "/pair/"  # the QR link's path (fragment kept by browsers)
        sw = http.get("/sw.js")
        assert sw.status_code == 200 and "showNotification" in sw.text
