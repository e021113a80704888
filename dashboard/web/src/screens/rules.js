// The rules editor: the age band's regulatory defaults shown beside each value and each
// waivable, the daily budget, a weekly schedule (several windows a day, windows across
// midnight), school hours, games, rest, per-app limits and always-allowed apps from the
// device's sealed catalogue, spending caps and ask-to-buy, the web filter, the timezone.
// Sending signs the policy here and seals it to the device and every guardian (§5.1).
import * as api from "../api.js";
import * as c from "../crypto.js";
import { fmtMoney, fmtNumber, t } from "../i18n.js";
import { readCatalogue } from "../messages.js";
import { DAYS, bandDefaults, crossesMidnight, dayWindows, effective, facts, parseDomains, parseNames, toPolicy, validate, weekTableOver } from "../policy.js";
import * as state from "../state.js";
import { busy, button, card, checkbox, errorText, field, group, h, input, notice, replace, select } from "../ui.js";
import { TIMEZONES, browserTimeZone, deviceLabel, devicePicker, noDevice, pickDevice, timezoneSelect, trackDelivery } from "./common.js";

let presetFor = null;
const WAIVE_DEFAULT = {
  daily_budget: (d) => t("rules.default_minutes", { n: d.budget.daily_minutes }),
  windows: () => t("rules.default_windows"),
  curfew: (d) => (d.curfew.every_day || []).join(", "),
  school: (d) => (d.school.enabled ? t("common.on") : t("common.off")),
  rest: (d) => t("rules.default_rest", { after: d.rest.after_minutes, brk: d.rest.break_minutes }),
  games: (d) => Object.entries(d.games.hours).map(([k, v]) => `${t(`day.${k}`)} ${v.join(", ")}`).join("; "),
  app_limits: () => t("rules.default_app_limits"),
};

export async function rules(ctx) {
  const d = pickDevice(ctx);
  if (!d) return noDevice();
  const fam = d.fam;
  const deviceId = d.status.id;
  const [latest, catalogue] = await Promise.all([state.latestPolicy(fam, deviceId), loadCatalogue(fam, deviceId)]);
  const start = latest ? latest.policy : { version: 0, age_band: "8-12", timezone: browserTimeZone() };
  // "apply the band's defaults" redraws the editor from them; nothing is sent until "send"
  const preset = presetFor?.device === deviceId ? presetFor.model : null;
  presetFor = null;
  const model = preset || effective(start);
  const screen = h("div", { class: "screen rules", testid: "rules-screen" });
  const form = editor(model, catalogue, (fresh) => { presetFor = { device: deviceId, model: fresh }; ctx.rerender(); });
  const status = h("div", { class: "status", "aria-live": "polite", testid: "rules-status" });
  const sendBtn = button(t("rules.send"), null, { kind: "primary", type: "submit", testid: "rules-send" });
  form.el.append(h("div", { class: "sticky-actions" }, sendBtn), status);
  form.el.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(sendBtn, async () => {
      replace(status);
      const dev = await api.get(api.dev(fam.id, deviceId));
      const version = Math.max(dev.policy_queued, dev.policy_applied, start.version) + 1;
      const policy = toPolicy(form.read(), version);
      const problems = validate(policy, { timezones: TIMEZONES });
      form.showProblems(problems);
      if (problems.length) {
        replace(status, notice(t("rules.fix", { n: problems.length }), "error", { testid: "rules-invalid" }));
        return;
      }
      try {
        const id = await state.send(fam, deviceId, "policy", { policy }, { seq: version, retentionDays: policy.retention_days ?? facts.bands[policy.age_band].retention_days });
        start.version = version;
        const line = h("div");
        replace(status, h("p", { class: "meta" }, t("rules.sent_version", { v: version })), line);
        trackDelivery(ctx, line, fam, deviceId, id, { label: deviceLabel(d) });
      } catch (err) {
        replace(status, notice(err.slug === "stale-policy" ? t("rules.stale") : errorText(err), "error", { testid: "rules-error" }));
      }
    });
  });
  replace(screen,
    devicePicker(ctx, d, "rules"),
    h("h1", {}, t("rules.title", { device: deviceLabel(d) })),
    h("p", { class: "meta" }, latest ? t("rules.current", { v: latest.policy.version, who: state.guardianLabel(fam, latest.sender) }) : t("rules.none_yet")),
    form.el);
  return screen;
}

async function loadCatalogue(fam, deviceId) {
  try {
    const got = await api.get(`${api.dev(fam.id, deviceId)}/catalogue`);
    const body = await c.openFromDevice(fam.ring, got.sealed, c.ctx.catalogue(fam.id, deviceId), deviceId, state.app.identity.seal);
    return readCatalogue(body).apps;
  } catch (e) {
    if (e.status === 404) return [];
    console.warn(e);
    return [];
  }
}

const num = (value, attrs = {}) => input({ type: "number", inputmode: "numeric", value: value ?? "", step: 1, ...attrs });
const intOf = (el) => (el.value.trim() === "" ? null : Number(el.value));
const yuan = (fen) => (fen / 100).toFixed(2).replace(/\.00$/, "");
const fen = (el) => Math.round(Number(el.value || 0) * 100);

/** A list of time windows with add/remove; `read()` gives ["HH:MM-HH:MM", ...]. */
function windows(label, ranges, { testid }) {
  const list = h("ul", { class: "windows" });
  const add = (r = "16:00-18:00") => {
    const [a, b] = r.split("-");
    const s = input({ type: "time", value: a, "aria-label": t("rules.from"), required: true });
    const e = input({ type: "time", value: b === "24:00" ? "00:00" : b, "aria-label": t("rules.until"), required: true });
    const note = h("span", { class: "hint" });
    const upd = () => { note.textContent = crossesMidnight(`${s.value}-${e.value}`) ? t("rules.next_day") : ""; };
    s.addEventListener("input", upd); e.addEventListener("input", upd); upd();
    const li = h("li", {}, s, h("span", { "aria-hidden": "true" }, "–"), e, note,
      button(t("rules.remove_window"), () => li.remove(), { kind: "link", "aria-label": t("rules.remove_window_aria", { what: label }) }));
    list.append(li);
  };
  for (const r of ranges) add(r);
  const el = h("div", { class: "window-editor", testid }, list, button(t("rules.add_window"), () => add(), { kind: "link", testid: `${testid}-add`, "aria-label": t("rules.add_window_aria", { what: label }) }));
  // <input type=time> has no 24:00: "00:00-00:00" is the whole day, "20:00-00:00" until midnight
  el.read = () => [...list.querySelectorAll("li")].map((li) => {
    const [s, e] = li.querySelectorAll("input");
    return s.value === "00:00" && e.value === "00:00" ? "00:00-24:00" : `${s.value}-${e.value}`;
  });
  el.set = (rs) => { replace(list); for (const r of rs) add(r); };
  return el;
}

/**
 * A week of windows (schedule, curfew, school hours): each day switched on or off with its
 * own windows, several a day, and a button copying Monday's to the other weekdays.
 * `read()` gives {day: ["HH:MM-HH:MM", ...] | null (off)}.
 */
function weekly(table, { testid, dayLabel, fresh, emptyIsOff = false }) {
  const days = DAYS.map((day) => {
    const list = dayWindows(table, day);
    const off = list === null || (emptyIsOff && !list.length);
    const on = checkbox(t(dayLabel, { day: t(`day.${day}`) }), !off, { testid: `${testid}-${day}-on` });
    const w = windows(t(`day.${day}`), off ? fresh : list, { testid: `${testid}-${day}` });
    w.hidden = off;
    on.control.addEventListener("change", () => { w.hidden = !on.control.checked; });
    return { day, on, w };
  });
  const copy = button(t("rules.copy_weekdays"), () => {
    const mon = days[0];
    for (const other of days.slice(1, 5)) {
      other.on.control.checked = mon.on.control.checked;
      other.w.hidden = mon.w.hidden;
      other.w.set(mon.w.read());
    }
  }, { kind: "link", testid: `${testid}-copy` });
  const el = h("div", { class: "days", testid }, days.map(({ on, w }) => h("div", { class: "day" }, on, w)), copy);
  el.read = () => Object.fromEntries(days.map(({ day, on, w }) => [day, on.control.checked ? w.read() : null]));
  return el;
}

function editor(model, catalogue, onPreset) {
  const el = h("form", { class: "form", novalidate: true });
  const fields = new Map(); // dotted policy key -> field wrapper (for error display)
  const reg = (key, f) => { fields.set(key, f); return f; };
  const defaults = () => bandDefaults(band.value);
  const defHint = (text) => t("rules.band_default", { value: text });

  // -- age band and its presets
  const band = select(Object.keys(facts.bands).map((b) => [b, t(`band.${b}`)]), model.age_band, { testid: "rules-band" });
  const presets = h("div", { class: "presets" });
  const showPresets = () => {
    const d = defaults();
    replace(presets, h("dl", { class: "facts" },
      h("dt", {}, t("rules.budget")), h("dd", {}, t("rules.default_minutes", { n: d.budget.daily_minutes })),
      h("dt", {}, t("rules.curfew")), h("dd", {}, d.curfew.every_day.join(", ")),
      h("dt", {}, t("rules.games")), h("dd", {}, WAIVE_DEFAULT.games(d)),
      h("dt", {}, t("rules.rest")), h("dd", {}, WAIVE_DEFAULT.rest(d)),
      h("dt", {}, t("rules.spending")), h("dd", {}, d.spending.per_transaction ? t("rules.default_spending", { tx: fmtMoney(d.spending.per_transaction), month: fmtMoney(d.spending.per_month) }) : t("rules.no_paid")),
      h("dt", {}, t("rules.filter")), h("dd", {}, d.filter.block_categories.map((x) => t(`filter.${x}`)).join(", "))));
  };
  band.addEventListener("change", showPresets);
  showPresets();
  const applyPreset = button(t("rules.apply_preset"), () => onPreset(effective({ version: model.version, age_band: band.value, timezone: tz.value })),
    { testid: "rules-apply-preset" });

  // -- waivers
  const waivers = facts.waivable.map((k) => {
    const cb = checkbox(`${t(`waive.${k}`)} — ${defHint(WAIVE_DEFAULT[k](model))}`, model.waive.includes(k), { testid: `waive-${k}` });
    cb.key = k;
    return cb;
  });

  // -- budget
  const daily = num(model.budget.daily_minutes, { min: 0, max: 1440, testid: "budget-daily" });
  const weekend = num(model.budget.weekend ?? "", { min: 0, max: 1440, testid: "budget-weekend" });

  // -- schedule (a day off has no window limit)
  const sched = weekly(model.schedule, { testid: "sched", dayLabel: "rules.limit_day", fresh: [] });

  // -- curfew, school, games, rest (a curfew day off has none; a school day off is no school day)
  const curfewOn = checkbox(t("rules.curfew_on"), model.curfew.enabled, { testid: "curfew-on" });
  const { enabled: _ce, ...curfewDays } = model.curfew;
  const curfew = weekly(curfewDays, { testid: "curfew", dayLabel: "rules.curfew_day", fresh: ["22:00-06:00"], emptyIsOff: true });
  const schoolOn = checkbox(t("rules.school_on"), model.school.enabled, { testid: "school-on" });
  const schoolMode = select(facts.school_modes.map((m) => [m, t(`school.${m}`)]), model.school.mode);
  const schoolHours = weekly(model.school.hours, { testid: "school", dayLabel: "rules.school_day", fresh: ["08:00-16:00"] });
  const holidays = input({ value: (model.school.holidays || []).join(", "), placeholder: "2026-12-25, 2027-01-01" });
  const gamesOn = checkbox(t("rules.games_on"), model.games.enabled, { testid: "games-on" });
  // the regulated game hours: several windows a day (across midnight too), a day off has none
  const gamesHours = weekly(model.games.hours, { testid: "games", dayLabel: "rules.games_day", fresh: ["20:00-21:00"] });
  const gamesHolidayHours = windows(t("rules.games_holiday_hours"), model.games.holiday_hours || [], { testid: "games-holiday" });
  const gamesHolidays = input({ value: (model.games.holidays || []).join(", "), placeholder: "2027-01-01, 2027-02-17", testid: "games-holidays" });
  const restOn = checkbox(t("rules.rest_on"), model.rest.enabled);
  const restAfter = num(model.rest.after_minutes, { min: 5, max: 600 });
  const restBreak = num(model.rest.break_minutes, { min: 1, max: 240 });
  const restEnforce = checkbox(t("rules.rest_enforce"), model.rest.enforce);

  // -- when time is up (or a window closes), and how long a session may stay unlocked then
  const timeUp = select(facts.time_up_modes.map((m) => [m, t(`time_up.${m}`)]), model.enforcement.time_up, { testid: "time-up" });
  const [graceLo, graceHi] = facts.limits.lock_grace_seconds;
  const grace = num(model.enforcement.lock_grace_seconds, { min: graceLo, max: graceHi, testid: "lock-grace" });

  // -- apps
  const appDefault = select(facts.app_defaults.map((v) => [v, t(`apps.default.${v}`)]), model.apps.default, { testid: "apps-default" });
  const known = new Map(catalogue.map((a) => [a.id, a]));
  for (const k of ["allowed", "blocked", "always_allowed", "payers", "emergency"]) for (const id of model.apps[k]) if (!known.has(id)) known.set(id, { id, name: id, categories: [] });
  for (const id of Object.keys(model.apps.limits)) if (!known.has(id)) known.set(id, { id, name: id, categories: [] });
  const appRows = h("tbody");
  const rows = [];
  const addAppRow = (a) => {
    const rule = select([["", t("apps.rule.none")], ["allowed", t("apps.rule.allowed")], ["always_allowed", t("apps.rule.always_allowed")], ["blocked", t("apps.rule.blocked")]],
      model.apps.always_allowed.includes(a.id) ? "always_allowed" : model.apps.blocked.includes(a.id) ? "blocked" : model.apps.allowed.includes(a.id) ? "allowed" : "",
      { "aria-label": t("apps.rule_for", { app: a.name || a.id }), testid: `app-rule-${a.id}` });
    const limit = num(model.apps.limits[a.id] ?? "", { min: 0, max: 1440, "aria-label": t("apps.limit_for", { app: a.name || a.id }), testid: `app-limit-${a.id}` });
    const payer = h("input", { type: "checkbox", checked: model.apps.payers.includes(a.id), "aria-label": t("apps.payer_for", { app: a.name || a.id }) });
    const emergency = h("input", { type: "checkbox", checked: model.apps.emergency.includes(a.id), "aria-label": t("apps.emergency_for", { app: a.name || a.id }), testid: `app-emergency-${a.id}` });
    rows.push({ id: a.id, rule, limit, payer, emergency });
    appRows.append(h("tr", {}, h("th", { scope: "row" }, h("span", {}, a.name || a.id), h("span", { class: "hint block" }, a.id)), h("td", {}, rule), h("td", {}, limit), h("td", {}, payer), h("td", {}, emergency)));
  };
  for (const a of [...known.values()].sort((x, y) => (x.name || x.id).localeCompare(y.name || y.id))) addAppRow(a);
  const newApp = input({ placeholder: "org.example.App", "aria-label": t("apps.add_id") });
  const emergencyCats = input({ value: model.apps.emergency_categories.join(", "), testid: "apps-emergency-categories", spellcheck: "false" });
  const addApp = button(t("apps.add"), () => {
    const id = newApp.value.trim();
    if (id && !rows.some((r) => r.id === id)) addAppRow({ id, name: id, categories: [] });
    newApp.value = "";
  });

  // -- spending
  const sp = model.spending;
  const money = (v, testid) => input({ type: "number", inputmode: "decimal", min: 0, step: "0.01", value: yuan(v), testid });
  const perTx = money(sp.per_transaction, "spend-tx"), perDay = money(sp.per_day, "spend-day"), perMonth = money(sp.per_month, "spend-month"), ask = money(sp.ask_above, "spend-ask");

  // -- filter
  const f = model.filter;
  const level = select([["allowlist", t("filter.level.allowlist")], ["standard", t("filter.level.standard")], ["custom", t("filter.level.custom")]],
    f.allowlist_only ? "allowlist" : "custom", { testid: "filter-level" });
  const cats = facts.filter_categories.map((cat) => { const cb = checkbox(t(`filter.${cat}`), f.block_categories.includes(cat)); cb.key = cat; return cb; });
  level.addEventListener("change", () => {
    if (level.value === "standard") { const dft = defaults().filter.block_categories; for (const cb of cats) cb.control.checked = dft.includes(cb.key); }
  });
  const safe = checkbox(t("filter.safesearch"), f.safesearch, { testid: "filter-safesearch" });
  const youtube = select(facts.youtube_modes.map((m) => [m, t(`filter.youtube.${m}`)]), f.youtube);
  const allow = h("textarea", { rows: 3, testid: "filter-allow", spellcheck: "false" }, f.allow.join("\n"));
  const block = h("textarea", { rows: 3, testid: "filter-block", spellcheck: "false" }, f.block.join("\n"));

  // -- general
  const tz = timezoneSelect(model.timezone, { testid: "rules-timezone" });
  const retention = num(model.retention_days, { min: 1, max: 3650, testid: "retention" });
  const lang = select(facts.languages.map((l) => [l, t(`lang.${l}`)]), model.enforcement.language);

  el.append(
    card(t("rules.band_title"), field(t("rules.band"), band), presets, applyPreset),
    card(t("rules.waive_title"), h("p", { class: "hint" }, t("rules.waive_lead")), h("div", { testid: "waivers" }, waivers)),
    card(t("rules.budget"),
      reg("budget.daily_minutes", field(t("rules.daily_minutes"), daily, { hint: defHint(t("rules.default_minutes", { n: bandDefaults(model.age_band).budget.daily_minutes })) })),
      reg("budget.weekend", field(t("rules.weekend_minutes"), weekend, { hint: t("rules.weekend_hint") }))),
    card(t("rules.schedule"), h("p", { class: "hint" }, t("rules.schedule_lead")), reg("schedule", group(t("rules.schedule_days"), sched))),
    card(t("rules.curfew"), curfewOn, reg("curfew", group(t("rules.curfew_hours"), curfew, { hint: defHint(bandDefaults(model.age_band).curfew.every_day.join(", ")) }))),
    card(t("rules.school"), schoolOn, field(t("rules.school_mode"), schoolMode), reg("school.hours", group(t("rules.school_hours"), schoolHours)),
      reg("school.holidays", field(t("rules.holidays"), holidays, { hint: t("rules.holidays_hint") }))),
    card(t("rules.games"), gamesOn,
      reg("games.hours", group(t("rules.games_hours"), gamesHours, { hint: defHint(WAIVE_DEFAULT.games(bandDefaults(model.age_band))) })),
      reg("games.holiday_hours", group(t("rules.games_holiday_hours"), gamesHolidayHours, { hint: defHint((bandDefaults(model.age_band).games.holiday_hours || []).join(", ") || t("common.none")) })),
      reg("games.holidays", field(t("rules.games_holidays"), gamesHolidays, { hint: t("rules.holidays_hint") }))),
    card(t("rules.rest"), restOn, reg("rest.after_minutes", field(t("rules.rest_after"), restAfter)), reg("rest.break_minutes", field(t("rules.rest_break"), restBreak)), restEnforce),
    card(t("rules.time_up"), h("p", { class: "hint" }, t("rules.time_up_lead")),
      reg("enforcement.time_up", field(t("rules.time_up_mode"), timeUp, { hint: defHint(t(`time_up.${bandDefaults(model.age_band).enforcement.time_up}`)) })),
      reg("enforcement.lock_grace_seconds", field(t("rules.lock_grace"), grace, { hint: defHint(t("unit.seconds", { n: fmtNumber(bandDefaults(model.age_band).enforcement.lock_grace_seconds) })) }))),
    card(t("rules.apps"), field(t("apps.default_label"), appDefault),
      catalogue.length ? null : notice(t("apps.no_catalogue"), "info"),
      h("div", { class: "table-wrap" }, h("table", { class: "apps", testid: "apps-table" }, h("caption", {}, t("apps.caption")),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("apps.app")), h("th", { scope: "col" }, t("apps.rule")), h("th", { scope: "col" }, t("apps.limit")), h("th", { scope: "col" }, t("apps.payer")), h("th", { scope: "col" }, t("apps.emergency")))),
        appRows)),
      reg("apps.blocked", h("div", { class: "row" }, newApp, addApp)),
      reg("apps.emergency_categories", field(t("apps.emergency_categories"), emergencyCats,
        { hint: `${t("apps.emergency_hint")} ${defHint(bandDefaults(model.age_band).apps.emergency_categories.join(", "))}` }))),
    card(t("rules.spending"), h("p", { class: "hint" }, t("rules.spending_lead")),
      reg("spending.per_transaction", field(t("spend.per_transaction"), perTx, { hint: defHint(fmtMoney(bandDefaults(model.age_band).spending.per_transaction)) })),
      reg("spending.per_day", field(t("spend.per_day"), perDay, { hint: defHint(fmtMoney(bandDefaults(model.age_band).spending.per_day)) })),
      reg("spending.per_month", field(t("spend.per_month"), perMonth, { hint: defHint(fmtMoney(bandDefaults(model.age_band).spending.per_month)) })),
      reg("spending.ask_above", field(t("spend.ask_above"), ask, { hint: t("spend.ask_hint") }))),
    card(t("rules.filter"), field(t("filter.level"), level), h("fieldset", {}, h("legend", {}, t("filter.categories")), cats), safe, field(t("filter.youtube"), youtube),
      reg("filter.allow", field(t("filter.allow"), allow, { hint: t("filter.domains_hint") })),
      reg("filter.block", field(t("filter.block"), block, { hint: t("filter.domains_hint") }))),
    card(t("rules.general"), reg("timezone", field(t("rules.timezone"), tz)), reg("retention_days", field(t("rules.retention"), retention, { hint: defHint(t("unit.days", { n: fmtNumber(bandDefaults(model.age_band).retention_days) })) })),
      field(t("rules.device_language"), lang)));

  const read = () => {
    const p = { version: model.version, age_band: band.value, timezone: tz.value, waive: waivers.filter((w) => w.control.checked).map((w) => w.key) };
    p.retention_days = intOf(retention);
    p.budget = { daily_minutes: intOf(daily) };
    if (weekend.value.trim() !== "") p.budget.weekend = intOf(weekend);
    p.schedule = weekTableOver(model.schedule, sched.read());
    // the curfew merges over the band's every_day: each day is written, a day off as []
    const nights = Object.fromEntries(Object.entries(curfew.read()).map(([k, v]) => [k, v ?? []]));
    p.curfew = { enabled: curfewOn.control.checked, ...weekTableOver(curfewDays, nights) };
    p.school = { enabled: schoolOn.control.checked, mode: schoolMode.value, hours: weekTableOver(model.school.hours, schoolHours.read()),
      holidays: parseNames(holidays.value) };
    p.games = { ...model.games, enabled: gamesOn.control.checked, hours: weekTableOver(model.games.hours, gamesHours.read()),
      holiday_hours: gamesHolidayHours.read(), holidays: parseNames(gamesHolidays.value) };
    p.rest = { enabled: restOn.control.checked, after_minutes: intOf(restAfter), break_minutes: intOf(restBreak), enforce: restEnforce.control.checked };
    const pick = (rule) => rows.filter((r) => r.rule.value === rule).map((r) => r.id).sort();
    p.apps = { ...model.apps, default: appDefault.value, allowed: pick("allowed"), always_allowed: pick("always_allowed"), blocked: pick("blocked"),
      payers: rows.filter((r) => r.payer.checked).map((r) => r.id).sort(),
      emergency: rows.filter((r) => r.emergency.checked).map((r) => r.id).sort(), emergency_categories: parseNames(emergencyCats.value),
      limits: Object.fromEntries(rows.filter((r) => r.limit.value.trim() !== "").map((r) => [r.id, intOf(r.limit)])) };
    p.spending = { currency: "CNY", per_transaction: fen(perTx), per_day: fen(perDay), per_month: fen(perMonth), ask_above: fen(ask) };
    p.filter = { ...model.filter, allowlist_only: level.value === "allowlist", block_categories: cats.filter((cb) => cb.control.checked).map((cb) => cb.key),
      safesearch: safe.control.checked, youtube: youtube.value, allow: parseDomains(allow.value), block: parseDomains(block.value) };
    p.enforcement = { ...model.enforcement, language: lang.value, time_up: timeUp.value, lock_grace_seconds: intOf(grace) };
    return merge2(model, p);
  };

  const showProblems = (problems) => {
    for (const f2 of fields.values()) f2.setError?.("");
    for (const pr of problems) {
      const key = [...fields.keys()].filter((k) => pr.key === k || pr.key.startsWith(`${k}.`) || k.startsWith(`${pr.key}.`)).sort((a, b) => b.length - a.length)[0];
      const target = fields.get(key) || fields.get(pr.key.split(".")[0]);
      const text = t(`problem.policy.${pr.code}`, { key: pr.key, ...pr.vars });
      if (target?.setError) target.setError(text);
      else if (target) target.append(h("p", { class: "error", role: "alert" }, text));
    }
    const first = el.querySelector("[aria-invalid=true], .error:not([hidden])");
    first?.scrollIntoView?.({ block: "center" });
  };
  return { el, read, showProblems };
}

/** The editor's values over the model (keys the editor does not show are kept as they were). */
function merge2(model, p) {
  const out = JSON.parse(JSON.stringify(model));
  for (const [k, v] of Object.entries(p)) out[k] = v;
  return out;
}

