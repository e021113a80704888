"""The app's push socket (dashboard/web/src/push.js) in Chromium, its WebSocket replaced by
a scripted one on the self-test page so that the order of events is the test's: after
`disconnect(); connect()` (what the app does once pairing adds a family) the old socket's
late close must neither forget the new socket nor schedule a reconnect of its own (CI saw
the requests screen stay stale once; two live sockets and a growing back-off were one way)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

SCRIPTED = """() => {
  const made = [];
  class Scripted {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; made.push(this); }
    send(text) { this.sent.push(text); }
    close() { this.readyState = 3; }  // the close event comes later, as in a browser
    open() { this.readyState = 1; this.onopen?.(); }
    hello() { this.onmessage?.({ data: JSON.stringify({ type: "hello" }) }); }
    event(id) { this.onmessage?.({ data: JSON.stringify({ type: "event", event: { id, kind: "request" } }) }); }
    closed() { this.readyState = 3; this.onclose?.(); }
  }
  window.WebSocket = Scripted;
  window.made = made;
}"""


def _run(page: Page, script: str) -> Any:
    page.evaluate(SCRIPTED)
    return page.evaluate(script)


def test_the_old_sockets_late_close_leaves_the_new_socket_alone(selftest: Page) -> None:
    got = _run(selftest, """() => {
      const push = mmSelftest.push, seen = [];
      mmSelftest.state.onEvent((e) => seen.push(e.kind));
      push.connect();
      made[0].open(); made[0].hello();
      push.disconnect(); push.connect();          // a new family: a socket that follows it
      made[1].open(); made[1].hello();
      made[0].closed();                           // the old socket's close arrives late
      made[0].event(7);                           // ... and anything it still delivered
      made[1].event(8);
      const out = { state: push.pushState(), sockets: made.length, seen };
      push.disconnect();
      return out;
    }""")
    assert got["sockets"] == 2, "no third socket"
    assert got["state"] == {"socket": 1, "retry": 0, "reconnecting": False, "after": 8}
    assert got["seen"] == ["connected", "connected", "request"]


def test_the_current_sockets_close_reconnects_with_back_off(selftest: Page) -> None:
    """The control: the socket in use closing does reconnect (and only once)."""
    got = _run(selftest, """() => {
      const push = mmSelftest.push;
      const st = () => { const { after, ...rest } = push.pushState(); return rest; };  // after: test 1's
      push.connect();
      made[0].open();
      made[0].closed();
      const out = st();
      push.connect();                             // the timer's connect, early: one socket
      push.connect();
      const after = { state: st(), sockets: made.length };
      push.disconnect();
      made[1].closed();                           // closed after disconnect: nothing scheduled
      return { out, after, final: st() };
    }""")
    assert got["out"] == {"socket": None, "retry": 1, "reconnecting": True}
    assert got["after"] == {"state": {"socket": 0, "retry": 1, "reconnecting": False}, "sockets": 2}
    assert got["final"] == {"socket": None, "retry": 1, "reconnecting": False}
