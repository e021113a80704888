// The child's requests, live: more time (15 min / 1 h / rest of the day / deny, one tap),
// purchases (approve / deny), reports (read, mark handled). Each request is opened and its
// device signature verified here; each answer is a decision signed and sealed here (§5.2),
// then shown as sent and, from the device's signed ack, applied.
import * as api from "../api.js";
import * as c from "../crypto.js";
import { fmtDateTime, fmtMoney, t } from "../i18n.js";
import { decision, readRequest } from "../messages.js";
import * as state from "../state.js";
import { busy, button, errorText, h, notice, replace } from "../ui.js";
import { debounce, deviceLabel, trackDelivery } from "./common.js";

/** Minutes from now to the next local midnight in `timeZone` (at most 720, the decision's cap). */
export function minutesLeftToday(timeZone, at = new Date()) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .formatToParts(at).filter((p) => p.type !== "literal").map((p) => [p.type, Number(p.value)]));
  return Math.max(1, Math.min(720, 1440 - (parts.hour * 60 + parts.minute)));
}

export async function requests(ctx) {
  const screen = h("div", { class: "screen", testid: "requests-screen" });
  const list = h("div", { class: "requests", "aria-live": "polite" });
  const handledList = h("div", { class: "requests handled" });
  const answeredHere = new Map(); // request id -> its card, kept in place with its delivery line
  const zones = new Map(); // device id -> its timezone (asked once per screen, when a request needs it)
  const zoneOf = (d) => {
    if (!zones.has(d.status.id)) zones.set(d.status.id, state.deviceTimeZone(d.fam, d.status.id));
    return zones.get(d.status.id);
  };
  const problem = h("div", { class: "status", "aria-live": "polite" });
  let drawn = 0; // the newest draw started: an older one finishing late must not overwrite it
  const draw = async () => {
    const ticket = ++drawn;
    const open = [], handled = [];
    await Promise.all(state.allDevices().map(async (d) => {
      const rows = await api.get(`${api.dev(d.fam.id, d.status.id)}/requests`, { status: "all" });
      if (rows.some((row) => row.kind === "more_time" && !row.handled_at)) {
        d.zone = zoneOf(d);
        d.zone.catch(() => {}); // a failure is shown when "rest of today" is tapped
      }
      const opened = await Promise.all(rows.map((row) => openRequest(d, row)));
      for (const r of opened) (r.row.handled_at ? handled : open).push(r);
    }));
    open.sort((a, b) => b.row.received_at - a.row.received_at);
    handled.sort((a, b) => b.row.handled_at - a.row.handled_at);
    if (!ctx.alive() || ticket !== drawn) return;
    const kept = handled.filter((r) => answeredHere.has(r.row.id)).map((r) => answeredHere.get(r.row.id));
    const cards = open.map((r) => requestCard(ctx, r, answeredHere));
    replace(list, kept, cards.length || kept.length ? cards : notice(t("requests.none"), "info", { testid: "requests-none" }));
    replace(handledList, handled.filter((r) => !answeredHere.has(r.row.id)).slice(0, 20).map((r) => requestCard(ctx, r, answeredHere, { handled: true })));
    replace(problem);
  };
  // A redraw that fails (the server unreachable, an answer this browser cannot read) is shown,
  // never swallowed: the list above it may be stale. The next event, the socket's reconnect
  // (it may have missed events meanwhile) or the page coming back into view draws again.
  const redraw = debounce(() => draw().catch((e) => {
    if (!ctx.alive()) return;
    console.warn(e);
    replace(problem, notice(t("requests.stale", { detail: errorText(e) }), "error", { testid: "requests-error" }));
  }), 100);
  ctx.onEvent((ev) => { if (ev.kind === "request" || ev.kind === "connected") redraw(); });
  const onVisible = () => { if (document.visibilityState === "visible") redraw(); };
  document.addEventListener("visibilitychange", onVisible);
  ctx.onLeave(() => document.removeEventListener("visibilitychange", onVisible));
  await draw();
  replace(screen, h("h1", {}, t("requests.title")), problem, list,
    h("details", { class: "history" }, h("summary", {}, t("requests.handled")), handledList));
  return screen;
}

async function openRequest(d, row) {
  try {
    const body = await c.openFromDevice(d.fam.ring, row.sealed, c.ctx.request(d.fam.id, d.status.id, row.id), d.status.id, state.app.identity.seal);
    if (body.id !== row.id) throw new c.ProtocolError("request.id", "not the request it was stored as");
    return { d, row, body, req: readRequest(body) };
  } catch (e) {
    if (!(e instanceof c.ProtocolError)) throw e;
    return { d, row, error: e };
  }
}

function requestCard(ctx, r, answeredHere, { handled = false } = {}) {
  const { d, row } = r;
  const who = deviceLabel(d);
  const head = h("p", { class: "meta" }, t("requests.from", { device: who, time: fmtDateTime(row.received_at) }));
  if (r.error) return h("article", { class: "card request bad" }, head, notice(t("requests.unreadable", { detail: r.error.message }), "error"));
  const req = r.req;
  const status = h("div", { class: "status", "aria-live": "polite" });
  const answered = handled ? h("p", { class: "meta" }, t("requests.handled_by", { who: row.handled_by ? state.guardianLabel(d.fam, row.handled_by) : "?", time: fmtDateTime(row.handled_at) })) : null;

  const answer = (btn, payload, label) => busy(btn, async () => {
    replace(status);
    answeredHere.set(row.id, card);
    try {
      const id = await state.send(d.fam, d.status.id, "decision", typeof payload === "function" ? await payload() : payload);
      await api.post(`${api.dev(d.fam.id, d.status.id)}/requests/${row.id}/handled`, {});
      for (const b of actions.querySelectorAll("button")) b.disabled = true;
      const line = h("div");
      replace(status, h("p", { class: "meta", testid: "answer-sent" }, t("requests.answered", { answer: label })), line);
      trackDelivery(ctx, line, d.fam, d.status.id, id, { label: who });
    } catch (e) { replace(status, notice(errorText(e), "error")); }
  });
  const actions = h("div", { class: "actions" });
  let title, text = null;
  if (req.kind === "more_time") {
    title = t("requests.more_time", { n: req.minutes });
    text = req.note;
    const rid = req.request_id;
    const b15 = button(t("requests.grant15"), () => answer(b15, decision.grantTime(15, rid), t("requests.grant15")), { kind: "primary", testid: "grant-15" });
    const b60 = button(t("requests.grant60"), () => answer(b60, decision.grantTime(60, rid), t("requests.grant60")), { kind: "primary", testid: "grant-60" });
    // the rest of the child's day: midnight where the device is (its policy's timezone)
    const bday = button(t("requests.grant_day"), () => answer(bday, async () => decision.grantTime(minutesLeftToday(await d.zone), rid), t("requests.grant_day")), { kind: "primary", testid: "grant-day" });
    const bno = button(t("requests.deny"), () => answer(bno, decision.deny(rid), t("requests.deny")), { kind: "danger", testid: "deny" });
    actions.append(b15, b60, bday, bno);
  } else if (req.kind === "purchase") {
    title = t("requests.purchase", { item: req.item, amount: fmtMoney(req.amount, req.currency) });
    text = t("requests.purchase_app", { app: req.app_id });
    const yes = button(t("requests.approve"), () => answer(yes, decision.purchase(req.request_id, true), t("requests.approve")), { kind: "primary", testid: "approve" });
    const no = button(t("requests.deny"), () => answer(no, decision.purchase(req.request_id, false), t("requests.deny")), { kind: "danger", testid: "deny" });
    actions.append(yes, no);
  } else {
    title = t(`requests.report.${req.report_kind}`);
    text = req.note;
    const done = button(t("requests.mark_handled"), () => busy(done, async () => {
      await api.post(`${api.dev(d.fam.id, d.status.id)}/requests/${row.id}/handled`, {});
      replace(status, notice(t("requests.marked"), "ok"));
      done.disabled = true;
    }), { testid: "mark-handled" });
    actions.append(done);
  }
  const card = h("article", { class: ["card", "request", req.kind, req.kind === "report" ? "attention" : null], testid: `request-${row.id}`, "data-kind": req.kind },
    head, h("h2", {}, title), text ? h("p", { class: "note" }, text) : null, answered, handled ? null : actions, status);
  return card;
}
