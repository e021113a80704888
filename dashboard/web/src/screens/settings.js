// Settings: the language (remembered in this browser), notifications while the app is closed
// (Web Push), who is logged in with which key, changing the password, and logging out
// (nothing stays behind).
import { LANGUAGES, language, setLanguage, t } from "../i18n.js";
import * as push from "../push.js";
import * as state from "../state.js";
import { busy, button, card, errorText, fingerprint, h, notice, replace, select } from "../ui.js";

export async function settings(ctx) {
  const lang = select(Object.keys(LANGUAGES).map((l) => [l, t(`lang.${l}`)]), language(), { id: "settings-lang", testid: "settings-lang" });
  lang.addEventListener("change", () => setLanguage(lang.value));
  const pushState = await push.webPushState().catch(() => "unsupported");
  const pushOut = h("div", { class: "status", "aria-live": "polite", testid: "push-status" }, h("p", {}, t(`push.${pushState}`)));
  const toggle = button(pushState === "on" ? t("push.disable") : t("push.enable"), () => busy(toggle, async () => {
    try {
      if (pushState === "on") await push.disableWebPush(); else await push.enableWebPush();
      ctx.rerender();
    } catch (e) { replace(pushOut, notice(e.message === "permission" ? t("push.denied") : t("push.failed", { detail: errorText(e) }), "error")); }
  }), { testid: "push-toggle", disabled: pushState === "unsupported" || pushState === "blocked" });
  const logout = button(t("auth.logout"), () => busy(logout, async () => {
    push.disconnect();
    await state.logOut();
    ctx.go("login");
  }), { kind: "danger", testid: "logout" });
  const a = state.app.account;
  return h("div", { class: "screen narrow", testid: "settings-screen" },
    h("h1", {}, t("settings.title")),
    card(t("settings.language"), h("label", { for: "settings-lang" }, t("settings.language_label")), lang),
    card(t("settings.notifications"), h("p", {}, t("push.lead")), pushOut, toggle, h("p", { class: "hint" }, t("push.china"))),
    card(t("settings.account"), h("dl", { class: "facts" },
      h("dt", {}, t("auth.email")), h("dd", {}, a.email),
      h("dt", {}, t("settings.name")), h("dd", {}, state.app.identity.label),
      h("dt", {}, t("settings.fingerprint")), h("dd", {}, h("code", { class: "fp" }, fingerprint(a.kid)))),
      h("p", {}, h("a", { class: "btn", href: "#/password", testid: "to-password" }, t("password.title"))), logout));
}
