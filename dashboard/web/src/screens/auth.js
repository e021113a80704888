// Sign-up, log-in, unlock and recovery (PROTOCOL.md §13): the password and the recovery key
// never leave the browser; the server gets derived keys and wrapped bundles only.
import { t } from "../i18n.js";
import * as state from "../state.js";
import { busy, button, checkbox, errorText, field, h, input, notice, replace } from "../ui.js";

const MIN_PASSWORD = 10;

function form(onSubmit, ...children) {
  const status = h("div", { class: "status", "aria-live": "assertive" });
  const f = h("form", { class: "form", novalidate: true }, ...children, status);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = f.querySelector("button[type=submit]");
    replace(status);
    try { await busy(btn, () => onSubmit(status)); } catch (err) {
      console.warn(err);
      replace(status, notice(errorText(err), "error", { testid: "form-error" }));
    }
  });
  return f;
}

const email = () => input({ type: "email", name: "email", autocomplete: "username", required: true, testid: "email", inputmode: "email" });
const password = (autocomplete, testid = "password") => input({ type: "password", name: "password", autocomplete, required: true, minlength: MIN_PASSWORD, testid });

function checkPassword(p1, p2) {
  if (p1.control.value.length < MIN_PASSWORD) { p1.setError(t("auth.password_short", { n: MIN_PASSWORD })); return false; }
  p1.setError("");
  if (p2 && p2.control.value !== p1.control.value) { p2.setError(t("auth.password_mismatch")); return false; }
  p2?.setError("");
  return true;
}

export function login(ctx) {
  const e = field(t("auth.email"), email());
  const p = field(t("auth.password"), password("current-password"));
  return h("div", { class: "screen narrow" },
    h("h1", {}, t("auth.login_title")),
    h("p", { class: "lead" }, t("auth.login_lead")),
    form(async () => {
      await state.logIn({ email: e.control.value.trim(), password: p.control.value });
      await ctx.signedIn();
      ctx.go(ctx.pending.qr ? "pair" : ctx.pending.invite ? "invite" : "home");
    }, e, p, button(t("auth.login"), null, { kind: "primary", type: "submit", testid: "login" })),
    h("p", {}, h("a", { href: "#/signup", testid: "to-signup" }, t("auth.to_signup"))),
    h("p", {}, h("a", { href: "#/recover" }, t("auth.to_recover"))));
}

export function signup(ctx) {
  const e = field(t("auth.email"), email());
  const name = field(t("auth.label"), input({ name: "label", maxlength: 64, required: true, autocomplete: "nickname", testid: "label" }), { hint: t("auth.label_hint") });
  const p1 = field(t("auth.password"), password("new-password"), { hint: t("auth.password_hint", { n: MIN_PASSWORD }) });
  const p2 = field(t("auth.password_again"), password("new-password", "password2"));
  const screen = h("div", { class: "screen narrow" });
  replace(screen,
    h("h1", {}, t("auth.signup_title")),
    h("p", { class: "lead" }, t("auth.signup_lead")),
    form(async () => {
      if (!name.control.value.trim()) { name.setError(t("auth.label_required")); return; }
      name.setError("");
      if (!checkPassword(p1, p2)) return;
      const recovery = await state.signUp({ email: e.control.value.trim(), password: p1.control.value, label: name.control.value.trim() });
      await ctx.signedIn();
      replace(screen, recoveryKey(recovery, () => ctx.go(ctx.pending.invite ? "invite" : ctx.pending.qr ? "pair" : "home")));
    }, e, name, p1, p2, button(t("auth.signup"), null, { kind: "primary", type: "submit", testid: "signup" })),
    h("p", {}, h("a", { href: "#/login" }, t("auth.to_login"))));
  return screen;
}

/** Shown once: the recovery key, printable; the guardian confirms they kept it. */
function recoveryKey(text, done) {
  const ok = checkbox(t("recovery.saved"), false, { testid: "recovery-saved" });
  const next = button(t("common.continue"), done, { kind: "primary", disabled: true, testid: "recovery-continue" });
  ok.control.addEventListener("change", () => { next.disabled = !ok.control.checked; });
  return h("div", { class: "recovery" },
    h("h1", {}, t("recovery.title")),
    h("p", { class: "lead" }, t("recovery.lead")),
    h("p", { class: "recovery-key", testid: "recovery-key", translate: "no" }, text),
    notice(t("recovery.once"), "warn"),
    h("div", { class: "row no-print" }, button(t("recovery.print"), () => window.print(), { testid: "recovery-print" })),
    h("div", { class: "no-print" }, ok, next));
}

export function unlock(ctx) {
  const p = field(t("auth.password"), password("current-password"));
  return h("div", { class: "screen narrow" },
    h("h1", {}, t("auth.unlock_title")),
    h("p", { class: "lead" }, t("auth.unlock_lead", { email: state.app.account.email })),
    form(async () => {
      await state.unlock(p.control.value);
      await ctx.signedIn();
      ctx.go("home");
    }, p, button(t("auth.unlock"), null, { kind: "primary", type: "submit", testid: "unlock" })),
    button(t("auth.logout"), async () => { await state.logOut(); ctx.go("login"); }));
}

export function recover(ctx) {
  const e = field(t("auth.email"), email());
  const k = field(t("recovery.key"), input({ name: "recovery", autocomplete: "off", spellcheck: "false", testid: "recovery-input" }), { hint: t("recovery.key_hint") });
  const p1 = field(t("auth.new_password"), password("new-password"));
  const p2 = field(t("auth.password_again"), password("new-password", "password2"));
  return h("div", { class: "screen narrow" },
    h("h1", {}, t("recovery.recover_title")),
    h("p", { class: "lead" }, t("recovery.recover_lead")),
    form(async () => {
      if (!checkPassword(p1, p2)) return;
      await state.recover({ email: e.control.value.trim(), recoveryKey: k.control.value, password: p1.control.value });
      await ctx.signedIn();
      ctx.go("home");
    }, e, k, p1, p2, button(t("recovery.recover"), null, { kind: "primary", type: "submit", testid: "recover" })),
    h("p", {}, h("a", { href: "#/login" }, t("auth.to_login"))));
}


/** Settings > password: the current password opens the keys, the new one wraps them again. */
export function changePassword(ctx) {
  const cur = field(t("auth.current_password"), password("current-password", "current-password"));
  const p1 = field(t("auth.new_password"), password("new-password", "new-password"), { hint: t("auth.password_hint", { n: MIN_PASSWORD }) });
  const p2 = field(t("auth.password_again"), password("new-password", "password2"));
  const screen = h("div", { class: "screen narrow", testid: "password-screen" });
  replace(screen,
    h("h1", {}, t("password.title")),
    h("p", { class: "lead" }, t("password.lead")),
    form(async (status) => {
      if (!checkPassword(p1, p2)) return;
      if (p1.control.value === cur.control.value) { p1.setError(t("password.same")); return; }
      if (!(await state.changePassword({ current: cur.control.value, password: p1.control.value }))) { cur.setError(t("password.wrong")); return; }
      cur.setError("");
      for (const f of [cur, p1, p2]) f.control.value = "";
      replace(status, notice(t("password.changed"), "ok", { testid: "password-changed" }));
    }, cur, p1, p2, button(t("password.change"), null, { kind: "primary", type: "submit", testid: "password-change" })),
    h("p", {}, h("a", { href: "#/settings" }, t("password.back"))));
  return screen;
}
