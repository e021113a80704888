// zh-CN and en: the language is chosen from the browser (navigator.languages) unless the
// guardian picked one, which is remembered. Both dictionaries have the same keys (a test
// checks it); dates, times, numbers and CNY go through Intl in the chosen locale.
import en from "./locales/en.js";
import zh from "./locales/zh-CN.js";

export const LANGUAGES = { "zh-CN": zh, en };
const KEY = "mm.language";
let lang = null;
const listeners = new Set();

export function detectLanguage() {
  const saved = localStorage.getItem(KEY);
  if (saved && LANGUAGES[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || "en"]) {
    if (/^zh\b/i.test(l)) return "zh-CN";
    if (/^en\b/i.test(l)) return "en";
  }
  return "zh-CN";
}
export function language() { return (lang ??= detectLanguage()); }
export function setLanguage(l, { remember = true } = {}) {
  if (!LANGUAGES[l]) return;
  lang = l;
  if (remember) localStorage.setItem(KEY, l);
  document.documentElement.lang = l;
  for (const fn of listeners) fn(l);
}
export const onLanguage = (fn) => listeners.add(fn);

/** The text for `key` with `{name}` placeholders filled; the key itself if unknown. */
export function t(key, vars = {}) {
  const text = LANGUAGES[language()][key] ?? LANGUAGES.en[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

const fmt = new Map();
function formatter(kind, opts) {
  const id = `${language()}|${kind}|${JSON.stringify(opts)}`;
  if (!fmt.has(id)) fmt.set(id, kind === "n" ? new Intl.NumberFormat(language(), opts) : new Intl.DateTimeFormat(language(), opts));
  return fmt.get(id);
}
const date = (unix) => new Date(unix * 1000);
export const fmtDateTime = (unix, timeZone) => formatter("d", { dateStyle: "medium", timeStyle: "short", ...(timeZone ? { timeZone } : {}) }).format(date(unix));
export const fmtTime = (unix, timeZone) => formatter("d", { timeStyle: "short", ...(timeZone ? { timeZone } : {}) }).format(date(unix));
/** A `YYYY-MM-DD` day (a local date of the policy's timezone) with its weekday. */
export function fmtDay(day, { weekday = "short" } = {}) {
  const [y, m, d] = day.split("-").map(Number);
  return formatter("d", { month: "numeric", day: "numeric", weekday, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
}
export const fmtNumber = (n) => formatter("n", {}).format(n);
/**
 * Make the number and day formatters now. The first Intl object of a page costs hundreds of
 * milliseconds on a slow phone (ICU's locale data); the app calls this while its first
 * requests are on the network, so the screens do not pay it after the answers arrive.
 */
export function warmFormats() {
  fmtNumber(0);
  fmtDay("2026-01-01");
}
/** Money in minor units (fen for CNY). */
export const fmtMoney = (minor, currency = "CNY") => formatter("n", { style: "currency", currency }).format(minor / 100);
export function fmtMinutes(seconds) {
  const m = Math.round(seconds / 60);
  if (m < 60) return t("unit.minutes", { n: fmtNumber(m) });
  return t("unit.hours_minutes", { h: fmtNumber(Math.floor(m / 60)), m: fmtNumber(m % 60) });
}
export function fmtAgo(unix, now = Date.now() / 1000) {
  const s = Math.max(0, Math.round(now - unix));
  const rtf = new Intl.RelativeTimeFormat(language(), { numeric: "auto" });
  if (s < 60) return rtf.format(-s, "second");
  if (s < 3600) return rtf.format(-Math.round(s / 60), "minute");
  if (s < 86400) return rtf.format(-Math.round(s / 3600), "hour");
  return rtf.format(-Math.round(s / 86400), "day");
}
