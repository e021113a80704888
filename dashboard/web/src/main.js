// The app shell: the language, the session, the hash router and the frame every screen is
// drawn in (a header with the language switch, the screen, a bottom navigation on phones).
// The pairing QR link (/pair#...) and the invitation link (/invite#...) land here too; their
// fragments are read once and removed from the address bar (they carry secrets).
import "./style.css";
import { ProtocolError, parseQrFragment } from "./crypto.js";
import { LANGUAGES, language, onLanguage, setLanguage, t, warmFormats } from "./i18n.js";
import * as push from "./push.js";
import { app, loadFamilies, onEvent, restore } from "./state.js";
import { h, notice, replace, errorText } from "./ui.js";

const screens = {
  login: () => import("./screens/auth.js").then((m) => m.login),
  signup: () => import("./screens/auth.js").then((m) => m.signup),
  recover: () => import("./screens/auth.js").then((m) => m.recover),
  unlock: () => import("./screens/auth.js").then((m) => m.unlock),
  home: () => import("./screens/home.js").then((m) => m.home),
  pair: () => import("./screens/pair.js").then((m) => m.pair),
  rules: () => import("./screens/rules.js").then((m) => m.rules),
  requests: () => import("./screens/requests.js").then((m) => m.requests),
  reports: () => import("./screens/reports.js").then((m) => m.reports),
  code: () => import("./screens/code.js").then((m) => m.code),
  data: () => import("./screens/data.js").then((m) => m.data),
  family: () => import("./screens/family.js").then((m) => m.family),
  invite: () => import("./screens/family.js").then((m) => m.acceptInvite),
  settings: () => import("./screens/settings.js").then((m) => m.settings),
  password: () => import("./screens/auth.js").then((m) => m.changePassword),
};
const PUBLIC = new Set(["login", "signup", "recover"]);
export const pending = { qr: null, invite: null };

/** `#/rules/<device>` -> {name: "rules", params: ["<device>"]}. */
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const name = parts[0] && screens[parts[0]] ? parts[0] : "home";
  return { name, params: parts.slice(1) };
}
export const go = (path) => { if (location.hash !== `#/${path}`) location.hash = `#/${path}`; else render(); };

function takeLinkFragments() {
  const path = location.pathname.replace(/\/+$/, "");
  if (path === "/pair" && location.hash.length > 1 && !location.hash.startsWith("#/")) {
    try { pending.qr = parseQrFragment(location.hash); } catch (e) { pending.linkError = e; }
    history.replaceState(null, "", "/#/pair");
  } else if (path === "/invite" && location.hash.length > 1 && !location.hash.startsWith("#/")) {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.get("t") && /^[0-9a-f]{64}$/.test(p.get("h") || "")) pending.invite = { token: p.get("t"), head: p.get("h") };
    else pending.linkError = new ProtocolError("invite", "not an invitation link");
    history.replaceState(null, "", "/#/invite");
  } else if (path === "/pair" || path === "/invite") {
    history.replaceState(null, "", `/#${path}`);
  }
}

const NAV = [["home", "nav.home"], ["requests", "nav.requests"], ["family", "nav.family"], ["settings", "nav.settings"]];

function frame(route, content) {
  const signedIn = !!app.identity;
  const langSwitch = h("select", { id: "lang", "aria-label": t("settings.language"), testid: "lang", on: { change: (e) => setLanguage(e.target.value) } },
    Object.keys(LANGUAGES).map((l) => h("option", { value: l, selected: l === language() }, t(`lang.${l}`))));
  const header = h("header", { class: "top" },
    h("a", { class: "brand", href: "#/" }, h("img", { src: "/icon.svg", alt: "", width: 28, height: 28 }), h("span", {}, t("app.name"))),
    langSwitch);
  const nav = signedIn ? h("nav", { class: "bottom", "aria-label": t("nav.label") },
    NAV.map(([name, key]) => h("a", { href: `#/${name}`, class: route.name === name ? "active" : null, "aria-current": route.name === name ? "page" : null, testid: `nav-${name}` }, t(key)))) : null;
  return [header, h("main", { id: "main", tabindex: "-1" }, content), nav];
}

let current = 0;
let unsubscribe = [];
export async function render() {
  const ticket = ++current;
  for (const u of unsubscribe) u();
  unsubscribe = [];
  const root = document.getElementById("app");
  let route = parseRoute();
  if (!app.identity && !PUBLIC.has(route.name)) {
    route = app.account ? { name: "unlock", params: [] } : { name: pending.invite ? "signup" : "login", params: [] };
  }
  const mounted = [];
  const shownHash = location.hash;
  const ctx = {
    afterMount: (fn) => mounted.push(fn),
    params: route.params,
    go,
    pending,
    signedIn,
    // a late event or answer of a screen the guardian left does nothing; on the same screen it redraws
    rerender: () => (location.hash === shownHash ? render() : null),
    onEvent: (fn) => { unsubscribe.push(onEvent(fn)); },
    onLeave: (fn) => { unsubscribe.push(fn); },
    alive: () => ticket === current,
  };
  try {
    const screen = await screens[route.name]();
    const content = await screen(ctx);
    if (ticket !== current) return;
    replace(root, ...frame(route, content));
    document.title = `${t(`title.${route.name}`)} · ${t("app.name")}`;
    for (const fn of mounted) fn();
    performance.mark(`mm:screen:${route.name}`); // what the performance tests read
  } catch (e) {
    if (ticket !== current) return;
    console.warn(e);
    replace(root, ...frame(route, h("div", { class: "screen" }, notice(errorText(e), "error"))));
  }
}

async function boot() {
  document.documentElement.lang = language();
  takeLinkFragments();
  onLanguage(() => render());
  window.addEventListener("hashchange", render);
  const route = parseRoute();
  screens[route.name]().catch(() => null); // fetch the screen's code while the session loads
  let status = "anonymous";
  const restoring = restore(); // its requests are on the network now ...
  warmFormats(); // ... and the main thread makes the formatters meanwhile
  try { status = await restoring; } catch (e) { console.warn(e); }
  if (status === "ready") {
    push.connect();
    push.registerServiceWorker().catch(() => null);
  }
  await render();
}

export async function signedIn() {
  await loadFamilies();
  push.disconnect();
  push.connect();
  push.registerServiceWorker().catch(() => null);
}

boot();
