// Pieces several screens share: a device picker, and the delivery line that shows whether a
// message reached the device ("applied on <device> at <time>"), from the device's signed
// ack only, verified here with the device's key from the keyring.
import * as api from "../api.js";
import { fmtAgo, fmtDateTime, fmtTime, t } from "../i18n.js";
import * as state from "../state.js";
import { h, notice, replace } from "../ui.js";

export function deviceLabel(d) { return d.party?.label || d.status.label || d.status.id.slice(0, 8); }

/** The device the route names, or the only/first one; null when none is paired. */
export function pickDevice(ctx) {
  const all = state.allDevices();
  return all.find((d) => d.status.id === ctx.params[0]) || all[0] || null;
}

export function devicePicker(ctx, current, screen) {
  const all = state.allDevices();
  if (all.length < 2) return null;
  return h("nav", { class: "tabs", "aria-label": t("device.choose") }, all.map((d) =>
    h("a", { href: `#/${screen}/${d.status.id}`, class: d === current ? "active" : null, "aria-current": d === current ? "page" : null }, deviceLabel(d))));
}

/** Every IANA timezone this browser knows (a policy's timezone is one of them, §5.1). */
export const TIMEZONES = new Set(typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["Asia/Shanghai", "UTC"]);
TIMEZONES.add("UTC");
export const browserTimeZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "Asia/Shanghai";

/** A select of the timezones with `value` chosen (kept even when this browser does not know it). */
export function timezoneSelect(value, attrs = {}) {
  const el = h("select", attrs, [...TIMEZONES].sort().map((z) => h("option", { value: z, selected: z === value }, z)));
  if (!TIMEZONES.has(value)) el.append(h("option", { value, selected: true }, value));
  return el;
}

export function noDevice() {
  return h("div", { class: "screen" }, notice(t("device.none")), h("p", {}, h("a", { class: "btn primary", href: "#/pair" }, t("home.pair"))));
}

/**
 * Fill `el` with the delivery state of message `id`: sent / applied on X at T / refused: R /
 * not yet applied (last contact T). Returns the verified ack (or null). `current()` says
 * whether this reading is still the newest one for `el`: an older, slower one (begun before
 * the ack arrived) must not write "sent" over "applied" or "refused".
 */
export async function showDelivery(el, fam, deviceId, id, { label, current = () => true }) {
  const show = (...nodes) => { if (current()) replace(el, ...nodes); };
  const d = await state.delivery(fam, deviceId, id);
  let ack = null;
  try { ack = await state.verifiedAck(fam, deviceId, d); } catch (e) {
    show(notice(t("delivery.bad_ack", { detail: e.message }), "error", { testid: "delivery" }));
    return null;
  }
  if (ack && ack.result === "applied") {
    show(notice(t("delivery.applied", { device: label, time: fmtDateTime(ack.applied_at ?? d.acked_at) }), "ok", { testid: "delivery", "data-state": "applied" }));
  } else if (ack && ack.result === "duplicate") {
    show(notice(t("delivery.duplicate", { device: label }), "ok", { testid: "delivery", "data-state": "duplicate" }));
  } else if (ack) {
    show(notice(t("delivery.refused", { reason: ack.reason || "-" }), "error", { testid: "delivery", "data-state": "refused" }));
  } else {
    const dev = await api.get(api.dev(fam.id, deviceId));
    const contact = dev.last_contact ? t("delivery.last_contact", { ago: fmtAgo(dev.last_contact), time: fmtTime(dev.last_contact) }) : t("delivery.never_contact");
    show(notice(`${t("delivery.sent", { time: fmtTime(d.queued_at) })} ${t("delivery.not_yet")} ${contact}`, "info", { testid: "delivery", "data-state": "sent" }));
  }
  return ack;
}

/** Keep `el` up to date with the message's delivery while the screen shows it (the newest reading wins). */
export function trackDelivery(ctx, el, fam, deviceId, id, opts) {
  let readings = 0;
  const refresh = () => {
    const mine = ++readings;
    return showDelivery(el, fam, deviceId, id, { ...opts, current: () => mine === readings }).catch((e) => console.warn(e));
  };
  replace(el, notice(t("delivery.sending"), "info", { testid: "delivery", "data-state": "sending" }));
  refresh();
  ctx.onEvent((ev) => { if (ev.kind === "ack" && ev.data?.message === id) refresh(); });
  const timer = setInterval(refresh, 15_000); // the last-contact time moves on
  ctx.onLeave(() => clearInterval(timer));
  return refresh;
}

/** Call `fn` at most once per `ms` for a burst of events. */
export function debounce(fn, ms = 150) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
