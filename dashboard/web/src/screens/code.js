// The offline guardian code (§10): 8 digits from HOTP over HMAC-SHA256 of floor(time / 30),
// computed here from the secret this app (or another guardian's) sent at pairing in a sealed
// set_guardian_code decision. The tablet accepts it with no network, so a guardian can
// unlock it for a while by typing the code on it. A guardian admitted later gets the same
// secret re-sealed to every guardian by the admitting guardian's app (state.shareCodeSecret).
import * as c from "../crypto.js";
import { t } from "../i18n.js";
import { decision } from "../messages.js";
import * as state from "../state.js";
import { busy, button, confirmDialog, errorText, h, notice, replace } from "../ui.js";
import { deviceLabel, devicePicker, noDevice, pickDevice, trackDelivery } from "./common.js";

export async function code(ctx) {
  const d = pickDevice(ctx);
  if (!d) return noDevice();
  const held = await state.guardianCodeKey(d.fam, d.status.id);
  const screen = h("div", { class: "screen narrow", testid: "code-screen" });
  const status = h("div", { class: "status", "aria-live": "polite" });
  const rotate = button(t("code.new_secret"), async () => {
    if (!(await confirmDialog(t("code.new_title"), t("code.new_text"), t("code.new_confirm")))) return;
    await busy(rotate, async () => {
      try {
        const secret = c.randomBytes(32);
        const id = await state.send(d.fam, d.status.id, "decision", decision.setGuardianCode(secret, held?.unlockMinutes ?? 30));
        await state.rememberCode(d.status.id, secret, held?.unlockMinutes ?? 30, id);
        const line = h("div");
        replace(status, line);
        trackDelivery(ctx, line, d.fam, d.status.id, id, { label: deviceLabel(d) });
        setTimeout(() => ctx.rerender(), 10);
      } catch (e) { replace(status, notice(errorText(e), "error")); }
    });
  }, { testid: "code-rotate" });
  if (!held) {
    replace(screen, devicePicker(ctx, d, "code"), h("h1", {}, t("code.title", { device: deviceLabel(d) })), notice(t("code.none"), "warn"), rotate, status);
    return screen;
  }
  const digits = h("p", { class: "code", testid: "guardian-code", "aria-live": "off" });
  const bar = h("progress", { max: c.CODE_STEP, value: 0, "aria-label": t("code.remaining_aria") });
  const left = h("p", { class: "meta", testid: "code-left" });
  let shown = -1;
  const tick = async () => {
    const now = Date.now() / 1000;
    const step = Math.floor(now / c.CODE_STEP);
    const remaining = Math.ceil(c.CODE_STEP - (now % c.CODE_STEP));
    bar.value = remaining;
    left.textContent = t("code.remaining", { s: remaining });
    if (step !== shown) {
      shown = step;
      const value = await c.guardianCode(held.key, now);
      digits.textContent = c.formatCode(value);
      digits.dataset.code = value;
      digits.setAttribute("aria-label", t("code.aria", { digits: value.split("").join(" ") }));
    }
  };
  await tick();
  const timer = setInterval(tick, 1000);
  ctx.onLeave(() => clearInterval(timer));
  replace(screen, devicePicker(ctx, d, "code"),
    h("h1", {}, t("code.title", { device: deviceLabel(d) })),
    h("p", { class: "lead" }, t("code.lead", { minutes: held.unlockMinutes })),
    digits, bar, left, notice(t("code.private"), "info"), rotate, status);
  return screen;
}
