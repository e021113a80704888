// A second guardian (PROTOCOL.md §8): an existing guardian makes an invitation and hands the
// link over outside the server; the invitee signs up and accepts; both compare the invitee's
// key fingerprint; the existing guardian signs the add_guardian entry here. The invitee's app
// trusts the keyring only if it reaches the head hash of the link and names its own keys.
import * as api from "../api.js";
import * as c from "../crypto.js";
import { fmtDateTime, t } from "../i18n.js";
import * as state from "../state.js";
import { busy, button, card, confirmDialog, errorText, fingerprint, h, notice, replace } from "../ui.js";
import { debounce } from "./common.js";

export async function family(ctx) {
  ctx.onEvent(debounce((ev) => { if (ev.kind === "invitation" || ev.kind === "keyring") ctx.rerender(); }, 200));
  await state.loadFamilies();
  const fams = [...state.app.families.values()];
  const mine = await api.get("/invitations/mine").catch(() => []);
  const waiting = mine.filter((i) => i.status === "accepted");
  return h("div", { class: "screen", testid: "family-screen" },
    h("h1", {}, t("family.title")),
    waiting.length ? notice(t("family.waiting_admission", { fp: fingerprint(state.app.identity.kid) }), "info", { testid: "waiting-admission" }) : null,
    fams.length ? await Promise.all(fams.map((f) => familyCard(ctx, f))) : notice(t("family.none")));
}

async function familyCard(ctx, fam) {
  const ring = fam.ring;
  const invitations = await api.get(`/families/${fam.id}/invitations`);
  const status = h("div", { class: "status", "aria-live": "polite" });
  const link = h("div", { testid: "invite-link-box" });
  const invite = button(t("family.invite"), () => busy(invite, async () => {
    try {
      const inv = await api.post(`/families/${fam.id}/invitations`, {});
      const url = `${location.origin}/invite#t=${inv.token}&h=${ring.headHash}`;
      const box = h("input", { type: "text", readonly: true, value: url, testid: "invite-link", "aria-label": t("family.link") });
      replace(link, h("p", {}, t("family.link_lead")), box,
        button(t("family.copy"), async () => { await navigator.clipboard?.writeText(url).catch(() => null); box.select(); }),
        h("p", { class: "hint" }, t("family.link_valid", { time: fmtDateTime(inv.expires_at) })));
    } catch (e) { replace(status, notice(errorText(e), "error")); }
  }), { kind: "primary", testid: "invite" });

  const admit = async (inv, btn) => {
    const ok = await confirmDialog(t("family.admit_title"), t("family.admit_text", { name: inv.invitee.label, fp: fingerprint(inv.invitee.kid) }), t("family.admit_confirm"));
    if (!ok) return;
    await busy(btn, async () => {
      try {
        const party = await c.partyFromJson(inv.invitee, "invitee", "kid");
        const fresh = await state.verifiedKeyring(fam.id);
        const entry = await fresh.entry(state.app.identity, "add_guardian", { party, now: state.now() });
        await fresh.extend(entry); // check it before the server sees it
        await api.post(`/families/${fam.id}/keyring`, { entry: c.envelopeToJson(entry) });
        const now = await state.refreshFamily(fam.id);
        // the new guardian cannot open what was sealed before: the guardian-code secret and the
        // policy in force go again, sealed to every guardian
        for (const deviceId of now.ring.devices.keys()) {
          await state.shareCodeSecret(now, deviceId);
          await state.sharePolicy(now, deviceId);
        }
        ctx.rerender();
      } catch (e) { replace(status, notice(e.slug === "stale-keyring" ? t("family.stale") : errorText(e), "error")); }
    });
  };

  const guardians = [...ring.guardians.values()].map((g) => h("li", {},
    h("strong", {}, g.label || "?"), " ", h("code", { class: "fp" }, fingerprint(g.id)), g.id === state.app.identity.kid ? ` (${t("family.you")})` : ""));
  const devices = [...ring.devices.values()].map((dv) => h("li", {}, dv.label || dv.id.slice(0, 8)));
  const pending = invitations.filter((i) => i.status === "open" || i.status === "accepted");
  return card(t("family.family", { n: fam.id.slice(0, 6) }),
    h("h3", {}, t("family.guardians")), h("ul", { testid: "guardians" }, guardians),
    h("h3", {}, t("family.devices")), h("ul", {}, devices),
    h("h3", {}, t("family.invitations")),
    pending.length ? h("ul", { class: "invitations" }, pending.map((inv) => {
      if (inv.status === "open") return h("li", {}, t("family.invitation_open", { time: fmtDateTime(inv.expires_at) }));
      const b = button(t("family.admit"), () => admit(inv, b), { kind: "primary", testid: "admit" });
      return h("li", { testid: "invitation-accepted" }, t("family.invitation_accepted", { name: inv.invitee.label }), " ",
        h("code", { class: "fp", testid: "invitee-fp" }, fingerprint(inv.invitee.kid)), " ", b);
    })) : h("p", {}, t("family.no_invitations")),
    invite, link, status);
}

/** The invitee's side: accept with this account's keys, show the fingerprint, wait to be admitted. */
export async function acceptInvite(ctx) {
  const screen = h("div", { class: "screen narrow", testid: "invite-screen" });
  const inv = ctx.pending.invite;
  if (ctx.pending.linkError) {
    replace(screen, notice(errorText(ctx.pending.linkError), "error"));
    ctx.pending.linkError = null;
    return screen;
  }
  if (!inv) { replace(screen, h("h1", {}, t("invite.title")), notice(t("invite.no_link"))); return screen; }
  let accepted;
  try { accepted = await api.post("/invitations/accept", { token: inv.token }); } catch (e) {
    replace(screen, h("h1", {}, t("invite.title")), notice(errorText(e), "error", { testid: "invite-error" }));
    return screen;
  }
  const fp = fingerprint(state.app.identity.kid);
  const status = h("div", { class: "status", "aria-live": "polite" }, notice(t("invite.waiting"), "info", { testid: "invite-waiting" }));
  replace(screen, h("h1", {}, t("invite.title")), h("p", { class: "lead" }, t("invite.compare")),
    h("p", { class: "sas", testid: "my-fingerprint" }, fp), status);
  const check = async () => {
    const fams = await api.get("/families");
    const fam = fams.find((f) => f.id === accepted.family);
    if (!fam) return false;
    try {
      await state.verifiedKeyring(fam.id, { headHash: inv.head }); // pinned to the link's head
    } catch (e) {
      replace(status, notice(t("invite.untrusted", { detail: e.message }), "error", { testid: "invite-untrusted" }));
      return true;
    }
    ctx.pending.invite = null;
    await ctx.signedIn();
    replace(status, notice(t("invite.admitted"), "ok", { testid: "invite-admitted" }), h("p", {}, h("a", { href: "#/home", class: "btn primary" }, t("nav.home"))));
    return true;
  };
  let stopped = false;
  ctx.onLeave(() => { stopped = true; });
  (async () => {
    // the invitee is not a member yet, so no family events reach it: poll, bounded
    for (let i = 0; i < 600 && !stopped; i++) {
      if (await check().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return screen;
}
