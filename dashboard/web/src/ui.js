// DOM helpers. Every text a child's device or the server sent is set as textContent, never
// as HTML: a decrypted note is adversarial input, and the CSP forbids inline script anyway.
import { t } from "./i18n.js";

/** h("button", {class: "x", on: {click}}, "text", child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "class") el.className = Array.isArray(v) ? v.filter(Boolean).join(" ") : v;
    else if (k === "for") el.htmlFor = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else if (k === "disabled") el.disabled = !!v;
    else if (k === "testid") el.dataset.testid = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}
export function replace(el, ...children) { el.replaceChildren(); append(el, children); return el; }

let ids = 0;
export const uid = (prefix = "f") => `${prefix}-${++ids}`;

/** A labelled form control with an optional hint and a slot for its error message. */
export function field(label, control, { hint = null, testid = null } = {}) {
  control.id ||= uid();
  const err = h("p", { class: "error", id: `${control.id}-err`, role: "alert", hidden: true });
  const hintEl = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [hintEl?.id, err.id].filter(Boolean).join(" "));
  const wrap = h("div", { class: "field", testid }, h("label", { for: control.id }, label), control, hintEl, err);
  wrap.control = control;
  wrap.setError = (msg) => {
    err.hidden = !msg; err.textContent = msg || "";
    if (msg) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
  };
  return wrap;
}
export const input = (attrs = {}) => h("input", { type: "text", ...attrs });

export function checkbox(label, checked, attrs = {}) {
  const box = h("input", { type: "checkbox", checked, ...attrs, id: attrs.id || uid() });
  const wrap = h("div", { class: "check" }, box, h("label", { for: box.id }, label));
  wrap.control = box;
  return wrap;
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export function button(label, onClick, { kind = "secondary", testid = null, type = "button", ...rest } = {}) {
  return h("button", { type, class: ["btn", kind], testid, on: onClick ? { click: onClick } : {}, ...rest }, label);
}

/** Run `work` with the button disabled and a busy state; errors go to `onError`. */
export async function busy(btn, work) {
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  try { return await work(); } finally { btn.disabled = false; btn.removeAttribute("aria-busy"); }
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

export function notice(text, kind = "info", attrs = {}) {
  return h("p", { class: ["notice", kind], role: kind === "error" ? "alert" : "status", ...attrs }, text);
}

/** The human message of an error (ApiError or ProtocolError), translated where known. */
export function errorText(e) {
  if (e && e.status) return e.message;
  if (e && e.where !== undefined) return t("error.protocol", { detail: e.message });
  return t("error.generic", { detail: String(e && e.message || e) });
}

let toastTimer = null;
export function toast(text) {
  let el = document.getElementById("toast");
  if (!el) { el = h("div", { id: "toast", class: "toast", role: "status" }); document.body.append(el); }
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

/** A confirmation dialog (the native <dialog>, modal, focus trapped by the browser). */
export function confirmDialog(title, text, confirmLabel, { danger = false, reasonLabel = null } = {}) {
  return new Promise((resolve) => {
    const reason = reasonLabel ? input({ maxlength: 200, required: true }) : null;
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": "dlg-title" },
      h("h2", { id: "dlg-title" }, title), h("p", {}, text),
      reason ? field(reasonLabel, reason) : null,
      h("div", { class: "row" },
        button(t("common.cancel"), () => { dlg.close(); resolve(null); }),
        button(confirmLabel, () => {
          if (reason && !reason.value.trim()) { reason.focus(); return; }
          dlg.close(); resolve(reason ? reason.value.trim() : true);
        }, { kind: danger ? "danger" : "primary", testid: "confirm" })));
    dlg.addEventListener("close", () => { dlg.remove(); resolve(null); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A table from rows of cells (for charts' text alternatives and lists). */
export function table(caption, head, rows, attrs = {}) {
  return h("table", attrs, caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c)))))));
}

export const fingerprint = (kid) => `${kid.slice(0, 4)} ${kid.slice(4, 8)}`;

/** A group of controls under a legend (time windows, day lists), with a hint and an error slot. */
export function group(legend, content, { hint = null, testid = null } = {}) {
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const el = h("fieldset", { class: "group", testid }, h("legend", {}, legend), hint ? h("p", { class: "hint" }, hint) : null, content, err);
  el.setError = (msg) => { err.hidden = !msg; err.textContent = msg || ""; };
  return el;
}

/** A <details> whose content is built the first time it is opened (long tables stay cheap). */
export function lazyDetails(summary, build) {
  const el = h("details", {}, h("summary", {}, summary));
  el.addEventListener("toggle", () => { if (el.open && el.childElementCount === 1) el.append(build()); });
  return el;
}
