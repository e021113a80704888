"""The web app's crypto module (dashboard/web/src/crypto.js) in Chromium: every vector of
protocol/vectors passes, natively and through the @noble fallback; the browser opens what
the Python device sealed; the Python device accepts what the browser signed and sealed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from support.protocol_family import NOW, make_family

from protocol.accept import ReplayState, open_guardian_message
from protocol.compose import compose, seal_to_guardians
from protocol.encoding import b64
from protocol.envelope import parse_body
from protocol.keyring import Keyring
from protocol.keys import Identity
from protocol.messages import ChildRequest, GrantTime, RequestKind, Summary
from protocol.sealing import request_ctx, summary_ctx

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"




def vectors() -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in VECTORS.glob("*.json")}


@pytest.mark.parametrize("fallback", [False, True], ids=["webcrypto", "noble-fallback"])
def test_every_vector_passes_in_the_browser(selftest: Page, fallback: bool) -> None:
    results = selftest.evaluate("([v, f]) => window.mmSelftest.runVectors(v, {fallback: f})",
                                [vectors(), fallback])
    failed = [r for r in results if not r["ok"]]
    assert not failed, failed
    names = {r["name"] for r in results}
    data = vectors()
    # every vector case is exercised (a vector file growing without the test noticing fails)
    assert len(results) >= (len(data["keys"]) + 2 * len(data["envelopes"]["valid"])
                            + len(data["envelopes"]["refuse"]) + len(data["envelopes"]["refuse_body"])
                            + len(data["keyring"]["chain"]) + len(data["keyring"]["refuse_after_first_two"])
                            + len(data["sealing"]["refuse"]) + 2)
    assert any("noble" in n or "keys:" in n for n in names)
    native = selftest.evaluate("() => window.mmSelftest.crypto.hasNativeCurves()")
    assert native is True, "Debian's Chromium has Ed25519 and X25519 in WebCrypto"
    assert selftest.console_errors == []  # type: ignore[attr-defined]


def _guardian_in_browser(page: Page, ident: Identity) -> None:
    """Import a Python-made guardian's private keys into the page (as unwrapping would)."""
    sign = ident.sign_key.private_bytes_raw().hex()
    seal = ident.seal_key.private_bytes_raw().hex()
    page.evaluate(
        """async ([s, x, kid]) => {
          const c = window.mmSelftest.crypto;
          const sign = await c.importPrivate("Ed25519", c.unhex(s, "", 32));
          const seal = await c.importPrivate("X25519", c.unhex(x, "", 32));
          window.testGuardian = {kid, sign, seal};
        }""",
        [sign, seal, ident.id],
    )


def _ring_in_browser(page: Page, ring: Keyring) -> None:
    page.evaluate("async (entries) => { window.testRing = await window.mmSelftest.crypto.Keyring.fromJson(entries); }",
                  ring.to_json())


def test_the_browser_opens_and_verifies_what_the_python_device_sealed(selftest: Page) -> None:
    fam = make_family()
    _guardian_in_browser(selftest, fam.guardian.identity)
    _ring_in_browser(selftest, fam.keyring)
    now = int(time.time())
    req = compose(fam.device, fam.keyring.family, fam.device.id,
                  ChildRequest("ab" * 16, RequestKind.MORE_TIME, minutes=30, note="作业做完了 please"), now)
    rid = parse_body(req.body_bytes).id
    ctx = request_ctx(fam.keyring.family, fam.device.id, rid)
    sealed = seal_to_guardians(req, ctx, fam.keyring)
    summary = compose(fam.device, fam.keyring.family, fam.device.id,
                      Summary("2026-11-30", "Asia/Shanghai", 3600, 3600, {"org.example.Game": 3000},
                              tuple([150] * 24), {}, {"bad.example": 2}, (), 1, {"clock_change": 1}, 3), now)
    sctx = summary_ctx(fam.keyring.family, fam.device.id, "2026-11-30")
    ssealed = seal_to_guardians(summary, sctx, fam.keyring)
    got = selftest.evaluate(
        """async ([sealed, ctx, ssealed, sctx, device]) => {
          const c = window.mmSelftest.crypto;
          const r = await c.openFromDevice(window.testRing, sealed, ctx, device, window.testGuardian.seal);
          const s = await c.openFromDevice(window.testRing, ssealed, sctx, device, window.testGuardian.seal);
          let refused = null;
          try { await c.openFromDevice(window.testRing, sealed, sctx, device, window.testGuardian.seal); }
          catch (e) { refused = e.where; }
          return {request: r.payload, id: r.id, summary: s.payload, refused};
        }""",
        [sealed.to_json(), ctx, ssealed.to_json(), sctx, fam.device.id],
    )
    assert got["id"] == rid
    assert got["request"] == {"request_id": "ab" * 16, "kind": "more_time", "minutes": 30,
                              "note": "作业做完了 please"}
    assert got["summary"]["per_app"] == {"org.example.Game": 3000} and got["summary"]["tamper"] == {"clock_change": 1}
    assert got["refused"] == "sealed.ctx"


def test_the_python_device_accepts_what_the_browser_signed_and_sealed(selftest: Page) -> None:
    fam = make_family()
    _guardian_in_browser(selftest, fam.guardian.identity)
    _ring_in_browser(selftest, fam.keyring)
    out = selftest.evaluate(
        """async ([device, now]) => {
          const c = window.mmSelftest.crypto;
          const g = window.testGuardian, ring = window.testRing;
          const {envelope, body} = await c.compose(g, {type: "decision", family: ring.family, device, now,
            payload: {kind: "grant_time", minutes: 15, request_id: "cd".repeat(16)}});
          const sealed = await c.sealToDevice(envelope, body.id, ring, device);
          return {id: body.id, sealed};
        }""",
        [fam.device.id, NOW],
    )
    accepted = open_guardian_message(json.dumps(out["sealed"]).encode(), out["id"], fam.device, fam.keyring,
                                     ReplayState(), NOW + 5)
    assert accepted.payload == GrantTime(15, "cd" * 16)
    assert accepted.signer.id == fam.guardian.kid
    # the other guardians can open it too (sealed to every active guardian, PROTOCOL.md §5)
    recipients = [w["to"] for w in out["sealed"]["wraps"]]
    assert fam.device.public.seal.hex() in recipients and fam.guardian.identity.public.seal.hex() in recipients
    # a flipped byte of the sealed blob is refused by the device
    bad = dict(out["sealed"], ct=b64(bytes([1]) + bytes(8)))
    with pytest.raises(ValueError):
        open_guardian_message(json.dumps(bad).encode(), out["id"], fam.device, fam.keyring, ReplayState(), NOW + 5)
