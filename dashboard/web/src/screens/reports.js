// Reports from the sealed daily summaries (§6.3), opened in this browser: a week of use per
// day and per app, one day's hours, blocked sites and apps, purchases, and tamper signs
// (clock changes, agent restarts, refused signatures) highlighted. Charts are uPlot on canvas
// (../charts.js: cheap on a phone, CSP-clean); each has a table as its text alternative.
import * as api from "../api.js";
import { appsOptions, axisTop, chart, columns, hoursOptions, warmUp, weekOptions } from "../charts.js";
import * as c from "../crypto.js";
import { fmtDay, fmtMinutes, fmtMoney, fmtNumber, t } from "../i18n.js";
import { readSummary } from "../messages.js";
import * as state from "../state.js";
import { button, card, h, lazyDetails, notice, replace, table } from "../ui.js";
import { deviceLabel, devicePicker, noDevice, pickDevice } from "./common.js";

// the agent's tamper event kinds (agent/store/events.py) as the summary counts them
const TAMPER_KNOWN = ["clock_jump", "timezone_change", "agent_start", "gate_outage", "bad_signature",
  "filter_list_missing", "storage_failure", "usb_blocked", "boot_tamper", "journal_damaged"];
const COLORS = { used: "#1f5fa8", budget: "#b3261e", app: "#2e7d5b", hour: "#6a4fb3" };
const HOURS = Array.from({ length: 24 }, (_, i) => String(i).padStart(2, "0"));
let weekOffset = 0;

/** `YYYY-MM-DD` of `date` in `timeZone`. */
export function localDay(date, timeZone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}
function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

export async function reports(ctx) {
  const dv = pickDevice(ctx);
  if (!dv) return noDevice();
  const t0 = performance.now();
  const fam = dv.fam;
  const deviceId = dv.status.id;
  // The child's days are the device's (its policy's timezone), not this browser's: a guardian
  // abroad still sees Monday as Monday in Shanghai. Its today is within a day of UTC's, so the
  // summaries are asked for with that margin while the timezone is found, then picked.
  const utcTo = addDays(new Date().toISOString().slice(0, 10), -7 * weekOffset);
  const asked = Promise.all([
    state.deviceTimeZone(fam, deviceId),
    api.get(`${api.dev(fam.id, deviceId)}/summaries`, { from: addDays(utcTo, -8), to: addDays(utcTo, 2) }),
  ]);
  warmUp(); // uPlot's code compiled while the requests are out, not when the week is drawn
  const [tz, wide] = await asked;
  const to = addDays(localDay(new Date(), tz), -7 * weekOffset);
  const days = Array.from({ length: 7 }, (_, i) => addDays(to, i - 6));
  const rows = wide.filter((r) => r.day >= days[0] && r.day <= to);
  const problems = [];
  const byDay = new Map();
  await Promise.all(rows.map(async (r) => {
    try {
      const body = await c.openFromDevice(fam.ring, r.sealed, c.ctx.summary(fam.id, deviceId, r.day), deviceId, state.app.identity.seal);
      const s = readSummary(body);
      if (s.day !== r.day) throw new c.ProtocolError("summary.day", `${s.day} was stored as ${r.day}`);
      const prev = byDay.get(s.day);
      if (!prev || prev.iat < body.iat) byDay.set(s.day, { ...s, iat: body.iat });
    } catch (e) {
      if (!(e instanceof c.ProtocolError)) throw e;
      problems.push(`${r.day}: ${e.message}`);
    }
  }));
  const week = days.map((d) => byDay.get(d) || null);
  const screen = h("div", { class: "screen reports", testid: "reports-screen" });
  const nav = h("div", { class: "row week-nav" },
    button(t("reports.prev_week"), () => { weekOffset++; ctx.rerender(); }, { testid: "prev-week" }),
    h("span", { class: "meta" }, `${fmtDay(days[0])} – ${fmtDay(to)}`),
    button(t("reports.next_week"), () => { weekOffset = Math.max(0, weekOffset - 1); ctx.rerender(); }, { disabled: weekOffset === 0, testid: "next-week" }));
  const rest = h("div", { class: "rest" });
  if (!byDay.size) {
    replace(screen, devicePicker(ctx, dv, "reports"), h("h1", {}, t("reports.title", { device: deviceLabel(dv) })), nav,
      problems.length ? notice(t("reports.unreadable", { n: problems.length }), "error") : null,
      notice(t("reports.none"), "info", { testid: "reports-none" }));
    return screen;
  }
  const used = week.map((s) => (s ? s.used_seconds : 0));
  const total = used.reduce((a, b) => a + b, 0);
  const withData = week.filter(Boolean).length;
  const budgets = week.map((s) => (s && s.budget_seconds !== null ? Math.round(s.budget_seconds / 60) : null));
  const perApp = sumCounts(week.map((s) => s?.per_app));
  const blockedDomains = sumCounts(week.map((s) => s?.blocked_domains));
  const blockedApps = sumCounts(week.map((s) => s?.blocked_apps));
  const purchases = week.flatMap((s) => (s ? s.purchases.map((p) => ({ ...p, day: s.day })) : []));
  const tamper = week.filter((s) => s && Object.keys(s.tamper).length);
  const labels = days.map((d) => fmtDay(d));

  const dayChart = chart({ role: "img", "aria-label": t("reports.per_day_aria", { total: fmtMinutes(total) }), "data-testid": "chart-week" });
  const appChart = chart({ role: "img", "aria-label": t("reports.per_app_aria", { n: Object.keys(perApp).length }), "data-testid": "chart-apps" });
  const hourChart = chart({ role: "img", "data-testid": "chart-hours" });
  ctx.onLeave(() => { for (const ch of [dayChart, appChart, hourChart]) ch.destroy(); });
  const axis = { title: t("reports.minutes"), tick: fmtNumber };
  let selected = [...week].reverse().find(Boolean).day;
  const dayButtons = h("div", { class: "tabs", role: "group", "aria-label": t("reports.pick_day") });
  const dayDetail = h("div");
  const drawDay = () => {
    const s = byDay.get(selected);
    replace(dayButtons, days.map((d) => button(fmtDay(d), () => { selected = d; drawDay(); }, { kind: d === selected ? "primary" : "secondary", disabled: !byDay.has(d), "aria-pressed": d === selected ? "true" : "false" })));
    hourChart.el.setAttribute("aria-label", t("reports.hourly_aria", { day: fmtDay(selected), used: fmtMinutes(s.used_seconds) }));
    const mins = s.hourly.map((x) => Math.round(x / 60));
    hourChart.draw((size) => hoursOptions({ ...size, ...axis, labels: HOURS, name: t("reports.used"), color: COLORS.hour }), columns(24, mins));
    replace(dayDetail, lazyDetails(t("reports.as_table"), () =>
      table(t("reports.hourly_title", { day: fmtDay(selected) }), [t("reports.hour"), t("reports.minutes")],
        mins.map((m, i) => [`${HOURS[i]}:00`, fmtNumber(m)]).filter((r) => r[1] !== "0"))));
  };

  replace(screen,
    devicePicker(ctx, dv, "reports"),
    h("h1", {}, t("reports.title", { device: deviceLabel(dv) })), nav,
    problems.length ? notice(t("reports.unreadable", { n: problems.length }), "error", { testid: "reports-bad" }) : null,
    tamper.length ? h("section", { class: "card tamper", role: "alert", testid: "tamper" },
      h("h2", {}, t("reports.tamper_title")), h("p", {}, t("reports.tamper_lead")),
      h("ul", {}, tamper.flatMap((s) => Object.entries(s.tamper).map(([k, n]) =>
        h("li", {}, h("strong", {}, TAMPER_KNOWN.includes(k) ? t(`tamper.${k}`) : k), ` × ${fmtNumber(n)} · ${fmtDay(s.day)}`))))) : null,
    card(t("reports.week"),
      h("p", { class: "big", testid: "week-total" }, fmtMinutes(total)),
      h("p", { class: "meta" }, t("reports.average", { avg: fmtMinutes(withData ? total / withData : 0) })),
      h("div", { class: "chart" }, dayChart.el),
      lazyDetails(t("reports.as_table"), () =>
        table(t("reports.per_day"), [t("reports.day"), t("reports.used"), t("reports.budget")],
          days.map((d, i) => [fmtDay(d), week[i] ? fmtMinutes(used[i]) : t("reports.no_data"), budgets[i] === null ? "–" : fmtMinutes(budgets[i] * 60)]), { testid: "per-day-table" }))),
    rest);
  // The cards below the week: built, laid out and drawn a frame after the week's chart.
  const belowTheWeek = () => [
    card(t("reports.per_app"),
      h("div", { class: "chart tall" }, appChart.el),
      lazyDetails(t("reports.as_table"), () =>
        table(t("reports.per_app"), [t("reports.app"), t("reports.used")], topN(perApp, 50).map(([app, sec]) => [app, fmtMinutes(sec)])))),
    card(t("reports.day_title"), dayButtons, h("div", { class: "chart" }, hourChart.el), dayDetail),
    card(t("reports.blocked"),
      countTable(t("reports.blocked_sites"), t("reports.site"), blockedDomains, t("reports.no_blocked_sites"), "blocked-sites"),
      countTable(t("reports.blocked_apps"), t("reports.app"), blockedApps, t("reports.no_blocked_apps"), "blocked-apps")),
    card(t("reports.purchases"),
      purchases.length ? longTable(null, [t("reports.day"), t("reports.item"), t("reports.amount"), t("reports.status")],
        purchases.reverse().map((p) => [fmtDay(p.day), p.item, fmtMoney(p.amount, p.currency), t(`purchase.${p.status}`).startsWith("purchase.") ? p.status : t(`purchase.${p.status}`)]), "purchases") : h("p", {}, t("reports.no_purchases")))];
  // The week first (what a phone shows without scrolling: the rest would only delay its
  // layout and chart), then the cards below it a frame later.
  ctx.afterMount(() => {
    const usedMin = used.map((x) => Math.round(x / 60));
    const names = [t("reports.used"), t("reports.budget")];
    dayChart.draw((size) => weekOptions({ ...size, ...axis, labels, names, colors: [COLORS.used, COLORS.budget], top: axisTop(Math.max(...usedMin, ...budgets.filter((b) => b !== null))) }),
      columns(7, usedMin, budgets), [{ name: names[0], color: COLORS.used }, { name: names[1], color: COLORS.budget, line: true }]);
    performance.mark("mm:reports:week");
    requestAnimationFrame(() => {
      if (!ctx.alive()) return;
      replace(rest, ...belowTheWeek());
      const apps = topN(perApp, 10);
      const appMin = apps.map(([, sec]) => Math.round(sec / 60));
      appChart.draw((size) => appsOptions({ ...size, ...axis, labels: apps.map(([a]) => a), name: t("reports.used"), color: COLORS.app, top: axisTop(Math.max(0, ...appMin)) }),
        columns(apps.length, appMin));
      drawDay();
      screen.dataset.renderMs = String(Math.round(performance.now() - t0));
      screen.dataset.ready = "true";
      performance.mark("mm:reports:charts");
    });
  });
  return screen;
}

const SHOWN = 10;
/** The first rows at once, the rest behind "show all" (built when opened). */
function longTable(caption, head, rows, testid) {
  return h("div", { testid },
    table(caption, head, rows.slice(0, SHOWN)),
    rows.length > SHOWN ? lazyDetails(t("reports.show_all", { n: rows.length }), () => table(null, head, rows.slice(SHOWN))) : null);
}
function countTable(caption, what, counts, none, testid) {
  const rows = topN(counts, 500).map(([k, n]) => [k, fmtNumber(n)]);
  return rows.length ? longTable(caption, [what, t("reports.times")], rows, testid) : h("p", { testid }, none);
}

function sumCounts(list) {
  const out = new Map();
  for (const m of list) if (m) for (const [k, v] of Object.entries(m)) out.set(k, (out.get(k) || 0) + v);
  return Object.fromEntries(out);
}
const topN = (counts, n) => Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, n);
