"""Web Push while the app is closed: the app registers its service worker; a push like the
server's (no content: which device and what kind, API.md "Web Push") makes it show a
notification in the browser's language, delivered here through the DevTools protocol
(ServiceWorker.deliverPushMessage): a real push service is out of reach in a closed network
(and FCM is in mainland China, which is why the open app's socket carries requests too)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.browser import Browser
from support.dashboard_server import ThreadServer
from support.web_flows import sign_up


@pytest.mark.parametrize(("locale", "title"), [("en-US", "Your child is asking"), ("zh-CN", "孩子有新的请求")])
def test_a_push_shows_a_notification(browser: Browser, web_server: ThreadServer, locale: str, title: str) -> None:
    ctx = browser.context(web_server.url, locale=locale)
    ctx.grant_permissions(["notifications"])
    page = ctx.new_page()
    sign_up(page, "Mum")
    assert page.evaluate("() => navigator.serviceWorker.ready.then((r) => r.scope)") == web_server.url + "/"
    cdp = ctx.new_cdp_session(page)
    regs: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: regs.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(100):
        if regs:
            break
        page.wait_for_timeout(50)
    assert regs, "the app's service worker is registered"
    # ready resolves while the worker may still be "activating" (its activate handler claims
    # the clients); a push sent to it then is dropped by DevTools' delivery, never by a real
    # push service, which waits for the active worker. So wait until it is "activated".
    state = ""
    for _ in range(200):
        state = page.evaluate("() => navigator.serviceWorker.ready.then((r) => r.active && r.active.state)")
        if state == "activated":
            break
        page.wait_for_timeout(50)
    assert state == "activated"
    push = {"type": "request", "family": "ab" * 16, "device": "cd" * 16, "kind": "purchase", "id": "ef" * 16}
    cdp.send("ServiceWorker.deliverPushMessage",
             {"origin": web_server.url, "registrationId": regs[0]["registrationId"], "data": json.dumps(push)})
    shown: list[list[str]] = []
    for _ in range(100):
        shown = page.evaluate("async () => (await (await navigator.serviceWorker.ready).getNotifications())"
                              ".map((n) => [n.title, n.tag, n.data.url])")
        if shown:
            break
        page.wait_for_timeout(50)
    assert shown == [[title, f"request-{'ef' * 16}", "/#/requests"]]
    ctx.close()
