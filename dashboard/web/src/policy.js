// The policy as the rules editor handles it: the age band's defaults (generated from the
// agent's own tables, policy-defaults.json), the guardian's policy merged over them exactly
// as agent/core/parse.py merges (tables key by key; open tables replaced whole), and the
// guardian's choices written back as only what differs from the band. The device validates
// with that parser; `validate` here catches the obvious mistakes first, with the same keys.
import facts from "./policy-defaults.json";

export { facts };
export const OPEN_TABLES = new Set(["limits", "categories", "hours", "schedule"]);
export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const clone = (v) => JSON.parse(JSON.stringify(v));

export function deepEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

export function merge(defaults, data) {
  const out = clone(defaults);
  for (const [k, v] of Object.entries(data)) {
    if (isObj(out[k]) && isObj(v) && !OPEN_TABLES.has(k)) out[k] = merge(out[k], v);
    else out[k] = clone(v);
  }
  return out;
}

export const bandDefaults = (band) => clone(facts.bands[band]);

/** The editor's full view of a policy: band defaults with the guardian's values over them. */
export function effective(policy) {
  const band = facts.bands[policy.age_band] ? policy.age_band : "8-12";
  return merge({ ...bandDefaults(band), waive: [] }, policy);
}

function diff(value, defaults) {
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    const d = defaults?.[k];
    if (isObj(v) && isObj(d) && !OPEN_TABLES.has(k)) {
      const sub = diff(v, d);
      if (Object.keys(sub).length) out[k] = sub;
    } else if (!deepEqual(v, d)) out[k] = clone(v);
  }
  return out;
}

/** What the guardian sends: identity keys, then only what differs from the band's defaults. */
export function toPolicy(eff, version) {
  const { version: _v, age_band, timezone, waive = [], ...rest } = eff;
  const out = { version, age_band, timezone };
  if (waive.length) out.waive = [...waive].sort();
  Object.assign(out, diff(rest, facts.bands[age_band]));
  return out;
}

// ------------------------------------------------------------------ weekly tables

const WEEKDAYS = DAYS.slice(0, 5), WEEKEND = DAYS.slice(5);

/** A day's windows in a weekly table as the parser resolves them (mon..sun over
 *  weekdays/weekend over every_day), or null when no key covers the day. */
export function dayWindows(table, day) {
  const group = WEEKEND.includes(day) ? "weekend" : "weekdays";
  for (const k of [day, group, "every_day"]) if (Object.hasOwn(table ?? {}, k)) return table[k];
  return null;
}

/** {day: windows | null} back to a weekly table, in the fewest keys: every_day when the
 *  seven days agree, weekdays / weekend when those do; a null day gets no key. */
export function weekTable(perDay) {
  const same = (days) => days.every((d) => perDay[d] !== null && deepEqual(perDay[d], perDay[days[0]]));
  if (same(DAYS)) return { every_day: clone(perDay.mon) };
  const out = {};
  for (const [key, days] of [["weekdays", WEEKDAYS], ["weekend", WEEKEND]]) {
    if (same(days)) out[key] = clone(perDay[days[0]]);
    else for (const d of days) if (perDay[d] !== null) out[d] = clone(perDay[d]);
  }
  return out;
}

/** `table` itself when it already says `perDay` (nothing changed: the policy keeps its own
 *  keys and stays what differs from the band), else `weekTable(perDay)`. */
export function weekTableOver(table, perDay) {
  return DAYS.every((d) => deepEqual(dayWindows(table, d), perDay[d])) ? clone(table) : weekTable(perDay);
}

// ------------------------------------------------------------------ validation

const RANGE = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/;
const APP_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9\-_]{0,61}[a-z0-9_])?\.)*[a-z0-9\-_]{1,63}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Why `text` is not a time range the agent accepts, or null ("22:00-06:00" crosses midnight). */
export function rangeProblem(text) {
  const m = RANGE.exec(text);
  if (!m) return "range_format";
  const [h1, m1, h2, m2] = m.slice(1).map(Number);
  if (h1 > 23 || m1 > 59 || h2 > 24 || m2 > 59 || (h2 === 24 && m2)) return "range_time";
  const start = h1 * 60 + m1, end = h2 * 60 + m2;
  if (start === end % 1440 && !(start === 0 && end === 1440)) return "range_zero";
  return null;
}
export const crossesMidnight = (text) => {
  const m = RANGE.exec(text);
  return !!m && Number(m[3]) * 60 + Number(m[4]) <= Number(m[1]) * 60 + Number(m[2]);
};

const intIn = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;

/** Problems as [{key: dotted path, code, vars}]; empty when the agent's parser should accept it. */
export function validate(p, { timezones = null } = {}) {
  const out = [];
  const bad = (key, code, vars = {}) => out.push({ key, code, vars });
  if (!intIn(p.version, 1, 2 ** 53)) bad("version", "int_range", { lo: 1, hi: 2 ** 53 });
  if (!facts.bands[p.age_band]) bad("age_band", "choice");
  if (typeof p.timezone !== "string" || !p.timezone || (timezones && !timezones.has(p.timezone))) bad("timezone", "timezone");
  const e = effective(p);
  if (!intIn(e.retention_days, 1, 3650)) bad("retention_days", "int_range", { lo: 1, hi: 3650 });
  for (const w of e.waive || []) if (!facts.waivable.includes(w)) bad("waive", "choice");
  for (const [k, v] of Object.entries(e.budget)) {
    if (k !== "daily_minutes" && !facts.day_keys.includes(k)) bad(`budget.${k}`, "unknown");
    else if (!intIn(v, 0, 1440)) bad(`budget.${k}`, "int_range", { lo: 0, hi: 1440 });
  }
  const ranges = (key, list) => {
    if (!Array.isArray(list)) { bad(key, "range_list"); return; }
    for (const r of list) { const why = rangeProblem(r); if (why) bad(key, why, { value: r }); }
  };
  for (const [k, v] of Object.entries(e.schedule)) ranges(`schedule.${k}`, v);
  for (const k of facts.day_keys) if (e.curfew[k] !== undefined) ranges(`curfew.${k}`, e.curfew[k]);
  for (const [k, v] of Object.entries(e.school.hours || {})) ranges(`school.hours.${k}`, v);
  const dates = (key, list) => { for (const d of list || []) if (!DATE.test(d) || Number.isNaN(Date.parse(d))) bad(key, "date", { value: d }); };
  dates("school.holidays", e.school.holidays);
  for (const [k, v] of Object.entries(e.games.hours || {})) ranges(`games.hours.${k}`, v);
  ranges("games.holiday_hours", e.games.holiday_hours ?? []);
  dates("games.holidays", e.games.holidays);
  if (!facts.school_modes.includes(e.school.mode)) bad("school.mode", "choice");
  if (!intIn(e.rest.after_minutes, 5, 600)) bad("rest.after_minutes", "int_range", { lo: 5, hi: 600 });
  if (!intIn(e.rest.break_minutes, 1, 240)) bad("rest.break_minutes", "int_range", { lo: 1, hi: 240 });
  const a = e.apps;
  for (const k of ["allowed", "blocked", "always_allowed", "payers", "emergency"]) for (const id of a[k]) if (!APP_ID.test(id)) bad(`apps.${k}`, "app_id", { value: id });
  if (!Array.isArray(a.emergency_categories) || a.emergency_categories.some((x) => typeof x !== "string")) bad("apps.emergency_categories", "category_list");
  for (const [id, m] of Object.entries(a.limits)) {
    if (!APP_ID.test(id)) bad("apps.limits", "app_id", { value: id });
    if (!intIn(m, 0, 1440)) bad(`apps.limits.${id}`, "int_range", { lo: 0, hi: 1440 });
  }
  for (const id of a.blocked) if (a.allowed.includes(id) || a.always_allowed.includes(id)) bad("apps.blocked", "blocked_allowed", { value: id });
  const s = e.spending;
  if (!/^[A-Z]{3}$/.test(s.currency)) bad("spending.currency", "currency");
  for (const k of ["per_transaction", "per_day", "per_month", "ask_above"]) if (!intIn(s[k], 0, 1e12)) bad(`spending.${k}`, "money");
  if (s.per_day > s.per_month) bad("spending.per_day", "per_day_month");
  if (s.per_transaction > s.per_day) bad("spending.per_transaction", "per_tx_day");
  const f = e.filter;
  for (const cat of f.block_categories) if (!facts.filter_categories.includes(cat)) bad("filter.block_categories", "choice", { value: cat });
  for (const k of ["allow", "block"]) for (const d of f[k]) if (!DOMAIN.test(d)) bad(`filter.${k}`, "domain", { value: d });
  if (!facts.youtube_modes.includes(f.youtube)) bad("filter.youtube", "choice");
  const en = e.enforcement;
  if (!facts.languages.includes(en.language)) bad("enforcement.language", "choice");
  if (!facts.time_up_modes.includes(en.time_up)) bad("enforcement.time_up", "choice");
  const [graceLo, graceHi] = facts.limits.lock_grace_seconds;
  if (!intIn(en.lock_grace_seconds, graceLo, graceHi)) bad("enforcement.lock_grace_seconds", "int_range", { lo: graceLo, hi: graceHi });
  return out;
}

/** Names separated by commas or spaces (categories), empty ones dropped. */
export const parseNames = (text) => text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

/** One domain a line (or commas), lower-cased, trailing dots removed, as the parser reads them. */
export const parseDomains = (text) => text.split(/[\s,]+/).map((d) => d.trim().toLowerCase().replace(/\.$/, "")).filter(Boolean);
