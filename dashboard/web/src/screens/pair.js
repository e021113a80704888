// Pairing (PROTOCOL.md §7) from the guardian's side: the tablet's 8-digit code (typed, or from
// its QR code scanned with the camera), the 6-digit SAS compared with the tablet's screen,
// the consent notice read and answered, then the keyring entry and the first messages
// (consent, the offline guardian code's secret, the age band's default rules) signed here.
import * as api from "../api.js";
import * as c from "../crypto.js";
import { language, t } from "../i18n.js";
import { decision, consentPayload } from "../messages.js";
import * as store from "../keystore.js";
import * as state from "../state.js";
import { busy, button, checkbox, errorText, field, h, input, notice, replace, select } from "../ui.js";
import defaults from "../policy-defaults.json";
import { browserTimeZone, timezoneSelect } from "./common.js";

const BANDS = Object.keys(defaults.bands);

export function pair(ctx) {
  const screen = h("div", { class: "screen narrow", testid: "pair-screen" });
  const status = h("div", { class: "status", "aria-live": "assertive" });
  const fail = (e) => { console.warn(e); replace(status, notice(errorText(e), "error", { testid: "pair-error" })); };

  const codeInput = input({ inputmode: "numeric", autocomplete: "one-time-code", maxlength: 9, pattern: "[0-9 ]*", testid: "pair-code" });
  const codeField = field(t("pair.code"), codeInput, { hint: t("pair.code_hint") });
  const start = async (code, qr) => {
    replace(status);
    try { await claim(ctx, screen, status, code, qr); } catch (e) { fail(e); }
  };
  const codeForm = h("form", { class: "form", novalidate: true },
    codeField, button(t("common.continue"), null, { kind: "primary", type: "submit", testid: "pair-continue" }));
  codeForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const code = codeInput.value.replace(/\s/g, "");
    if (!/^[0-9]{8}$/.test(code)) { codeField.setError(t("pair.code_invalid")); return; }
    codeField.setError("");
    busy(codeForm.querySelector("button[type=submit]"), () => start(code, null));
  });
  const scanner = h("div", { class: "scanner" });
  const scan = button(t("pair.scan"), () => scanQr(scanner, (url) => {
    try { const qr = c.parseQrUrl(url); start(qr.code, qr); } catch (e) { fail(e); }
  }).catch(fail), { testid: "pair-scan" });

  replace(screen, h("h1", {}, t("pair.title")), h("p", { class: "lead" }, t("pair.lead")), codeForm,
    h("p", { class: "or" }, t("pair.or")), scan, scanner, status);
  if (ctx.pending.linkError) { fail(ctx.pending.linkError); ctx.pending.linkError = null; }
  if (ctx.pending.qr) {
    const qr = ctx.pending.qr;
    ctx.pending.qr = null;
    start(qr.code, qr);
  }
  return screen;
}

/** The camera stream, decoded with jsQR (Chromium on Linux has no BarcodeDetector). */
async function scanQr(el, found) {
  const { default: jsQR } = await import("jsqr");
  const video = h("video", { playsinline: true, muted: true, "aria-label": t("pair.camera") });
  const canvas = document.createElement("canvas");
  const stop = button(t("common.cancel"), () => end());
  replace(el, video, stop);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (e) {
    replace(el, notice(t("pair.no_camera"), "error"));
    return;
  }
  video.srcObject = stream;
  await video.play();
  let running = true;
  const end = () => { running = false; for (const tr of stream.getTracks()) tr.stop(); replace(el); };
  const tick = () => {
    if (!running) return;
    if (video.readyState >= 2 && video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      const g = canvas.getContext("2d", { willReadFrequently: true });
      g.drawImage(video, 0, 0);
      const img = g.getImageData(0, 0, canvas.width, canvas.height);
      const qr = jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
      if (qr && qr.data.includes("#v=1&")) { end(); found(qr.data); return; }
    }
    requestAnimationFrame(tick);
  };
  tick();
}

async function claim(ctx, screen, status, code, qr) {
  const claimed = await api.post("/pairing/claim", { code });
  const offer = claimed.offer;
  if (qr && offer.device_id !== qr.deviceId) throw new c.ProtocolError("offer.device_id", t("pair.not_that_device"));
  const session = claimed.session;
  const me = state.app.identity;
  const fams = [...state.app.families.values()];
  const fam = fams[0] || null;
  const nonce = c.randomBytes(32);
  const mac = qr ? c.b64(await c.qrMac(qr.secret, offer.commitment, me.public, nonce)) : null;
  await api.post(`/pairing/${session}/response`, { guardian: c.partyToJson(me.public, "kid"), nonce: c.b64(nonce), family: fam?.id ?? null, mac });
  replace(screen, h("h1", {}, t("pair.title")), notice(t("pair.waiting_device"), "info", { testid: "pair-waiting" }), status);
  const reveal = await api.waitFor(`/pairing/${session}/reveal`, 25);
  if (!reveal) throw new Error(t("pair.timeout"));
  const rf = new c.Fields(reveal, "reveal");
  const device = await c.partyFromJson(rf.raw("device"), "reveal.device", "id");
  const deviceNonce = rf.bytes("nonce", { size: 32 });
  rf.done();
  if ((await c.pairingCommitment(device, deviceNonce)) !== offer.commitment) {
    throw new c.ProtocolError("reveal", t("pair.commitment_mismatch"));
  }
  if (device.id !== offer.device_id || (qr && device.id !== qr.deviceId)) throw new c.ProtocolError("reveal.device.id", t("pair.not_that_device"));
  const sas = await c.pairingSas(offer.commitment, device, deviceNonce, me.public, nonce);
  const abort = async (reason) => {
    await api.post(`/pairing/${session}/abort`, { reason }).catch(() => null);
    replace(screen, h("h1", {}, t("pair.title")), notice(t("pair.aborted"), "warn", { testid: "pair-aborted" }),
      h("p", {}, h("a", { href: "#/pair", class: "btn" }, t("pair.again"))));
  };
  replace(screen, h("h1", {}, t("pair.compare_title")),
    h("p", { class: "lead" }, t(qr ? "pair.compare_lead_qr" : "pair.compare_lead", { device: device.label || device.id.slice(0, 8) })),
    h("p", { class: "sas", testid: "sas", "aria-label": t("pair.sas_aria", { digits: sas.split("").join(" ") }) }, c.formatSas(sas)),
    h("div", { class: "row" },
      button(t("pair.match"), () => consent(ctx, screen, { session, device, fam, abort }), { kind: "primary", testid: "sas-match" }),
      button(t("pair.differ"), () => abort("the codes differ"), { kind: "danger", testid: "sas-differ" })));
}

async function consent(ctx, screen, p) {
  const notice_ = await api.get("/consent/notice", { language: language() });
  const status = h("div", { class: "status", "aria-live": "assertive" });
  const usage = checkbox(notice_.optional.usage_reports || t("pair.usage_reports"), true, { testid: "consent-usage" });
  const pushOpt = checkbox(notice_.optional.push_notifications || t("pair.push"), true, { testid: "consent-push" });
  const band = select(BANDS.map((b) => [b, t(`band.${b}`)]), "8-12", { testid: "pair-band", id: "pair-band" });
  // the tablet's days (budget, curfew, reports) start at midnight here: where the child lives,
  // which this browser's own timezone only guesses (a guardian abroad, a browser set to UTC)
  const zone = timezoneSelect(browserTimeZone(), { testid: "pair-timezone", id: "pair-timezone" });
  const sections = Object.entries(notice_.sections).map(([k, text]) => h("section", {}, h("h3", {}, t(`notice.${k}`)), h("p", {}, text)));
  const answer = async (accepted, btn) => {
    replace(status);
    try {
      await busy(btn, () => complete(ctx, screen, p, { notice: notice_, accepted, usage: accepted && usage.control.checked, push: accepted && pushOpt.control.checked, band: band.value, timezone: zone.value }));
    } catch (e) { console.warn(e); replace(status, notice(errorText(e), "error", { testid: "pair-error" })); }
  };
  const accept = button(t("pair.accept"), () => answer(true, accept), { kind: "primary", testid: "consent-accept" });
  const refuse = button(t("pair.refuse"), () => answer(false, refuse), { testid: "consent-refuse" });
  replace(screen,
    h("h1", {}, notice_.title),
    h("p", { class: "meta", testid: "notice-version" }, t("notice.version", { v: notice_.version })),
    h("div", { class: "notice-text", tabindex: "0", role: "region", "aria-label": notice_.title }, sections),
    h("fieldset", {}, h("legend", {}, t("pair.optional")), usage, pushOpt),
    field(t("pair.band"), band, { hint: t("pair.band_hint") }),
    field(t("pair.timezone"), zone, { hint: t("pair.timezone_hint") }),
    notice(t("pair.refuse_means"), "info"),
    h("div", { class: "row" }, accept, refuse, button(t("pair.cancel"), () => p.abort("cancelled by the guardian"), { testid: "pair-cancel" })),
    status);
}

async function complete(ctx, screen, p, a) {
  const { session, device } = p;
  const me = state.app.identity;
  await api.post(`/pairing/${session}/consent`, {
    version: a.notice.version, language: language(), accepted: a.accepted, usage_reports: a.usage, push_notifications: a.push,
  });
  const t0 = state.now();
  let ring = p.fam ? await state.verifiedKeyring(p.fam.id) : await c.Keyring.fromEntries([await c.makeGenesis(me, c.newId(), t0)]);
  ring = await ring.extend(await ring.entry(me, "add_device", { party: device, now: t0 }));
  const family = ring.family;
  const secret = c.randomBytes(32);
  const policy = { version: 1, age_band: a.band, timezone: a.timezone };
  const retention = defaults.bands[a.band].retention_days;
  const values = [
    ["consent", consentPayload({ notice: a.notice.version, language: language(), accepted: a.accepted, usageReports: a.usage, pushNotifications: a.push }), 0],
    ["decision", decision.setGuardianCode(secret, 30), 0],
    ["policy", { policy }, 1],
  ];
  const messages = [];
  const meta = [];
  for (const [type, payload, seq] of values) {
    const { envelope, body } = await c.compose(me, { type, family, device: device.id, payload, now: t0, seq });
    messages.push({ id: body.id, sealed: await c.sealToDevice(envelope, body.id, ring, device.id) });
    meta.push({ id: body.id, type, seq, ...(type === "policy" ? { retention_days: retention } : {}) });
  }
  await api.post(`/pairing/${session}/complete`, { complete: { entries: ring.entries.map(c.envelopeToJson), messages }, meta });
  await state.rememberCode(device.id, secret, 30, messages[1].id);
  await store.saveKeyring(family, ring.entries.map(c.envelopeToJson)); // the server's must extend this
  replace(screen, h("h1", {}, t("pair.title")), notice(t("pair.waiting_paired", { device: device.label }), "info", { testid: "pair-waiting" }));
  const done = await api.waitFor(`/pairing/${session}/paired`, 25);
  if (!done || done.state !== "paired") {
    replace(screen, h("h1", {}, t("pair.title")), notice(t("pair.failed", { state: done?.state || "timeout", reason: done?.reason || "" }), "error", { testid: "pair-error" }));
    return;
  }
  await ctx.signedIn(); // the new family's keyring is verified and the push socket follows it
  replace(screen, h("h1", {}, t("pair.done_title")),
    notice(t("pair.done", { device: device.label || device.id.slice(0, 8) }), "ok", { testid: "pair-done" }),
    h("div", { class: "row" },
      h("a", { class: "btn primary", href: `#/rules/${device.id}`, testid: "pair-to-rules" }, t("pair.set_rules")),
      h("a", { class: "btn", href: `#/code/${device.id}` }, t("nav.code"))));
}
