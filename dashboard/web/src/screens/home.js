// Home: every paired device with what the guardian needs at a glance (last contact, the rule
// version in force, waiting requests) and the way to each screen about it.
import * as api from "../api.js";
import { fmtAgo, fmtDateTime, t } from "../i18n.js";
import * as state from "../state.js";
import { h, notice } from "../ui.js";
import { debounce, deviceLabel } from "./common.js";

export async function home(ctx) {
  ctx.onEvent(debounce((ev) => { if (["request", "ack", "device", "keyring"].includes(ev.kind)) ctx.rerender(); }, 300));
  await state.loadFamilies();
  const devices = state.allDevices();
  const pendingConsent = await api.get("/consent/pending").catch(() => []);
  const cards = await Promise.all(devices.map(async (d) => {
    const [open, policy] = await Promise.all([
      api.get(`${api.dev(d.fam.id, d.status.id)}/requests`, { status: "open" }).catch(() => []),
      policyInForce(d),
    ]);
    return deviceCard(d, open.length, policy);
  }));
  return h("div", { class: "screen" },
    h("h1", {}, t("home.title", { name: state.app.identity.label })),
    pendingConsent.length ? notice(t("home.consent_pending", { n: pendingConsent.length }), "warn", { testid: "consent-pending" }) : null,
    devices.length ? h("div", { class: "cards" }, cards) : notice(t("home.no_devices")),
    h("p", {}, h("a", { class: "btn primary", href: "#/pair", testid: "pair-device" }, t("home.pair"))));
}

/**
 * The rules in force as the tablet's own signed ack says (verified here with its key), not
 * as the server's status claims: {text, bad}.
 */
async function policyInForce(d) {
  const list = await state.deliveries(d.fam, d.status.id, 50).catch(() => []);
  for (const del of list) {
    if (del.type !== "policy" || !del.ack) continue;
    let ack;
    try { ack = await state.verifiedAck(d.fam, d.status.id, del); } catch (e) {
      return { text: t("delivery.bad_ack", { detail: e.message }), bad: true };
    }
    if (ack.result === "applied") return { text: t("home.policy_applied", { v: del.seq, time: fmtDateTime(ack.applied_at ?? del.acked_at) }), bad: false };
  }
  return { text: t("home.policy_none"), bad: false };
}

function deviceCard(d, openRequests, inForce) {
  const s = d.status;
  const id = s.id;
  const policy = inForce.bad ? h("span", { class: "error", testid: "policy-bad" }, inForce.text) : h("span", { testid: "policy-in-force" }, inForce.text);
  const queued = s.policy_queued > s.policy_applied ? t("home.policy_queued", { v: s.policy_queued }) : null;
  return h("article", { class: "card device", testid: `device-${id}`, "aria-labelledby": `dev-${id}` },
    h("h2", { id: `dev-${id}` }, deviceLabel(d)),
    h("dl", { class: "facts" },
      h("dt", {}, t("home.last_contact")), h("dd", {}, s.last_contact ? fmtAgo(s.last_contact) : t("home.never")),
      h("dt", {}, t("home.rules")), h("dd", {}, policy, queued ? h("span", { class: "badge" }, queued) : null),
      h("dt", {}, t("home.requests")), h("dd", {}, openRequests ? h("a", { href: "#/requests", class: "badge alert", testid: "open-requests" }, t("home.open_requests", { n: openRequests })) : t("home.no_requests")),
      s.status !== "active" ? [h("dt", {}, t("home.status")), h("dd", {}, t(`device.status.${s.status}`))] : null),
    h("div", { class: "links" },
      h("a", { href: `#/rules/${id}`, testid: "to-rules" }, t("nav.rules")),
      h("a", { href: `#/reports/${id}`, testid: "to-reports" }, t("nav.reports")),
      h("a", { href: `#/code/${id}`, testid: "to-code" }, t("nav.code")),
      h("a", { href: `#/data/${id}`, testid: "to-data" }, t("nav.data"))));
}
