// Data rights (Prov. 13, 15; Reg. 36): what is held about the child (kinds and counts, on
// the server and as the device last reported), an export the guardian downloads (decrypted
// here, never on the server), deletion, unpairing, the audit log of who read what, and the
// consent notice with its version and the answers given.
import * as api from "../api.js";
import * as c from "../crypto.js";
import { fmtDateTime, fmtNumber, language, t } from "../i18n.js";
import { consentPayload, decision, readCatalogue, readRequest, readSummary } from "../messages.js";
import * as store from "../keystore.js";
import * as state from "../state.js";
import { busy, button, card, confirmDialog, errorText, h, notice, replace, table } from "../ui.js";
import { deviceLabel, devicePicker, noDevice, pickDevice } from "./common.js";

export async function data(ctx) {
  const d = pickDevice(ctx);
  if (!d) return noDevice();
  const fam = d.fam, id = d.status.id, base = api.dev(fam.id, id);
  const [holdings, status, audit, consents, notice_] = await Promise.all([
    api.get(`${base}/holdings`), api.get(base), api.get(`/families/${fam.id}/audit`, { limit: 50 }),
    api.get(`${base}/consents`), api.get("/consent/notice", { language: language() }),
  ]);
  const out = h("div", { class: "status", "aria-live": "polite", testid: "data-status" });
  const fail = (e) => replace(out, notice(errorText(e), "error"));

  const exportBtn = button(t("data.export"), () => busy(exportBtn, async () => {
    try { await exportFile(fam, id, deviceLabel(d)); replace(out, notice(t("data.exported"), "ok", { testid: "exported" })); } catch (e) { fail(e); }
  }), { kind: "primary", testid: "export" });
  // delete and unpair: confirmed with a reason, which the signed decision carries
  const dangerous = (key, testid, run) => {
    const btn = button(t(`data.${key}`), async () => {
      const reason = await confirmDialog(t(`data.${key}_title`), t(`data.${key}_text`, { device: deviceLabel(d) }), t(`data.${key}_confirm`), { danger: true, reasonLabel: t("data.reason") });
      if (!reason) return;
      await busy(btn, async () => { try { await run(reason); } catch (e) { fail(e); } });
    }, { kind: "danger", testid });
    return btn;
  };
  const total = (deleted) => fmtNumber(Object.values(deleted).reduce((a, b) => a + b, 0));
  const deleteBtn = dangerous("delete", "delete-data", async (reason) => {
    const decisionId = await state.send(fam, id, "decision", decision.deleteData(reason));
    const r = await api.del(`${base}/data`, { decision: decisionId });
    replace(out, notice(t("data.deleted", { n: total(r.deleted), receipt: r.receipt_id.slice(0, 8) }), "ok", { testid: "deleted" }));
  });
  const unpairBtn = dangerous("unpair", "unpair", async (reason) => {
    const decisionId = await state.send(fam, id, "decision", decision.unpair(reason));
    const r = await api.post(`${base}/unpair`, { decision: decisionId });
    // the keyring no longer names the device: nothing more is sealed to it
    const ring = await state.verifiedKeyring(fam.id);
    const entry = await ring.entry(state.app.identity, "remove_device", { target: id, now: state.now() });
    await ring.extend(entry);
    await api.post(`/families/${fam.id}/keyring`, { entry: c.envelopeToJson(entry) });
    await store.forgetCode(id);
    await state.refreshFamily(fam.id);
    replace(out, notice(t("data.unpaired", { device: deviceLabel(d), n: total(r.deleted) }), "ok", { testid: "unpaired" }));
    for (const b of [exportBtn, deleteBtn, unpairBtn]) b.disabled = true;
  });

  const cs = status.consent;
  const answer = async (accepted) => {
    try {
      const body = { version: notice_.version, language: language(), accepted, usage_reports: accepted && cs.usage_reports, push_notifications: accepted && cs.push_notifications };
      await api.post(`${base}/consent`, body);
      await state.send(fam, id, "consent", consentPayload({ notice: notice_.version, language: language(), accepted, usageReports: body.usage_reports, pushNotifications: body.push_notifications }));
      ctx.rerender();
    } catch (e) { fail(e); }
  };
  const deviceKinds = [
    [t("data.kind.journal"), fmtNumber(status.journal_cursor + status.pending_uploads)],
    [t("data.kind.policy"), status.policy_applied ? `v${status.policy_applied}` : "–"],
    [t("data.kind.code"), t("data.kind.code_value")],
  ];
  return h("div", { class: "screen", testid: "data-screen" },
    devicePicker(ctx, d, "data"),
    h("h1", {}, t("data.title", { device: deviceLabel(d) })),
    card(t("data.held"),
      table(t("data.on_server"), [t("data.kind"), t("data.count")], Object.entries(holdings.kinds).map(([k, n]) => [t(`data.kind.${k}`), fmtNumber(n)]), { testid: "holdings" }),
      table(t("data.on_device"), [t("data.kind"), t("data.count")], deviceKinds),
      h("p", { class: "hint" }, t("data.on_device_hint"))),
    card(t("data.rights"), h("p", {}, t("data.rights_lead")), h("div", { class: "row" }, exportBtn, deleteBtn, unpairBtn), out),
    card(t("data.consent"),
      h("p", { testid: "consent-version" }, t("data.consent_state", { v: cs.version || "–", current: cs.current_version, answer: cs.accepted ? t("data.accepted") : t("data.refused") })),
      cs.asked_again ? notice(t("data.asked_again"), "warn") : null,
      h("details", {}, h("summary", {}, t("data.read_notice", { v: notice_.version })),
        Object.entries(notice_.sections).map(([k, text]) => h("section", {}, h("h3", {}, t(`notice.${k}`)), h("p", {}, text)))),
      h("div", { class: "row" }, button(t("data.consent_accept"), () => answer(true), { testid: "consent-again" }), button(t("data.consent_withdraw"), () => answer(false))),
      consents.length ? table(t("data.answers"), [t("data.when"), t("data.who"), t("data.version"), t("data.answer")],
        consents.map((r) => [fmtDateTime(r.at), state.guardianLabel(fam, r.kid), r.version, r.accepted ? t("data.accepted") : t("data.refused")])) : null),
    card(t("data.audit"),
      audit.length ? table(null, [t("data.when"), t("data.who"), t("data.what")], audit.map((a) => [fmtDateTime(a.at), a.kid ? state.guardianLabel(fam, a.kid) : t("data.server"), t(`audit.${a.action}`).startsWith("audit.") ? a.action : t(`audit.${a.action}`)]), { testid: "audit" })
        : h("p", {}, t("data.audit_none"))));
}

/** Everything held about the device, opened here, as one JSON file the guardian downloads. */
async function exportFile(fam, deviceId, label) {
  const x = await api.get(`${api.dev(fam.id, deviceId)}/export`);
  const me = state.app.identity.seal;
  const tryOpen = async (fn) => { try { return await fn(); } catch (e) { if (e instanceof c.ProtocolError) return { unreadable: e.message }; throw e; } };
  const summaries = await Promise.all(x.summaries.map((s) => tryOpen(async () => readSummary(await c.openFromDevice(fam.ring, s.sealed, c.ctx.summary(fam.id, deviceId, s.day), deviceId, me)))));
  const requests = await Promise.all(x.requests.map((r) => tryOpen(async () => ({ received_at: r.received_at, handled_at: r.handled_at, ...readRequest(await c.openFromDevice(fam.ring, r.sealed, c.ctx.request(fam.id, deviceId, r.id), deviceId, me)) }))));
  const catalogue = x.catalogue ? await tryOpen(async () => readCatalogue(await c.openFromDevice(fam.ring, x.catalogue.sealed, c.ctx.catalogue(fam.id, deviceId), deviceId, me))) : null;
  const messages = await Promise.all(x.messages.map((m) => tryOpen(async () => {
    const r = await state.reopen(fam, deviceId, m);
    return { id: m.id, type: m.type, status: m.status, queued_at: m.queued_at, acked_at: m.acked_at, payload: r?.body.payload ?? null };
  })));
  const keys = new Map();
  for (const seg of x.journal.segments) {
    const mine = seg.keys.find((k) => k.recipient === c.hex(me.pub));
    if (mine) keys.set(seg.uid, await tryOpen(() => c.openSegmentKey(mine.wrapped, seg.uid, me)));
  }
  const journal = await Promise.all(x.journal.records.map((r) => tryOpen(async () => {
    const key = keys.get(r.segment);
    if (!(key instanceof Uint8Array)) throw new c.SealError(`record ${r.seq}`, "its segment is not sealed to this guardian");
    return { seq: r.seq, ...(await c.openJournalRecord(key, r.segment, r.seq, r.nonce, r.ciphertext)) };
  })));
  const file = {
    exported_at: x.exported_at, device: { id: deviceId, label }, family: fam.id,
    journal, summaries, requests, catalogue, messages, receipts: x.receipts, consents: x.consents,
  };
  const blob = new Blob([JSON.stringify(file, null, 1)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `minormode-${label || deviceId}-${new Date().toISOString().slice(0, 10)}.json`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
