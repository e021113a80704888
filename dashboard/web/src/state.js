// The app's model and the actions that change it: the account and its keys, the families
// (each with a keyring verified here and extended only from the head this browser holds),
// and sending signed, sealed messages to a device. Screens call these; nothing else talks to
// the crypto module about keys.
import * as api from "./api.js";
import * as c from "./crypto.js";
import * as store from "./keystore.js";
import { language } from "./i18n.js";
import { decision as decisions, readAck, readDecision, readPolicy } from "./messages.js";

export const app = { account: null, identity: null, families: new Map(), listeners: new Set() };
export const now = () => Math.floor(Date.now() / 1000);
export const PBKDF2_ITERATIONS = 600_000;

export function emit(event) { for (const fn of app.listeners) fn(event); }
export function onEvent(fn) { app.listeners.add(fn); return () => app.listeners.delete(fn); }

// ------------------------------------------------------------------ the account

function adopt(session) {
  api.setCsrf(session.csrf_token);
  app.account = session.account;
}

/**
 * A reloaded app: the session cookie and the keys kept in IndexedDB. The family list is
 * asked for at the same time (one round trip less on a slow phone) and verified once the
 * keys are there.
 */
export async function restore() {
  const families = api.get("/families").catch(() => null);
  try { adopt(await api.get("/session")); } catch (e) {
    if (e.status === 401) return "anonymous";
    throw e;
  }
  app.identity = await store.loadIdentity(app.account.kid);
  if (!app.identity) return "locked";
  await loadFamilies(await families).catch((e) => console.warn(e)); // the screens load and show it again
  return "ready";
}

export async function signUp({ email, password, label }) {
  const kdf = c.newKdf(PBKDF2_ITERATIONS);
  const keys = await c.deriveAccount(password, kdf);
  const { identity, bundle } = await c.newIdentity(label);
  const recovery = c.newRecoveryKey();
  const body = {
    email, kdf: c.kdfToJson(kdf), auth: c.b64(keys.auth),
    guardian: c.partyToJson(identity.public, "kid"),
    wrapped_keys: await c.wrapBundle(bundle, keys.wrap, identity.kid),
    recovery_wrapped_keys: await c.wrapBundle(bundle, await c.recoveryWrap(recovery), identity.kid),
    recovery_auth: c.b64(await c.recoveryAuth(recovery)), language: language(),
  };
  adopt(await api.post("/accounts", body));
  await store.saveIdentity(identity, email);
  app.identity = identity;
  return c.formatRecoveryKey(recovery);
}

async function unwrapInto(session, wrapKey) {
  const a = session.account;
  const identity = await c.unwrapIdentity(a.wrapped_keys, wrapKey, a.kid, a.guardian.label);
  delete identity.bundle;
  await store.saveIdentity(identity, a.email);
  app.identity = identity;
}

export async function logIn({ email, password }) {
  const kdf = c.kdfFromJson(await api.post("/accounts/prelogin", { email }));
  const keys = await c.deriveAccount(password, kdf);
  const session = await api.post("/session", { email, auth: c.b64(keys.auth) });
  adopt(session);
  await unwrapInto(session, keys.wrap);
}

/** The cookie is valid but this browser holds no keys (cleared storage): the password opens them. */
export async function unlock(password) {
  const keys = await c.deriveAccount(password, c.kdfFromJson(app.account.kdf));
  await unwrapInto({ account: app.account }, keys.wrap);
}

export async function logOut() {
  try { await api.del("/session"); } finally {
    await store.clearAll();
    Object.assign(app, { account: null, identity: null });
    app.families.clear();
    api.setCsrf("");
  }
}

/** Recovery (§13): the recovery key opens the second wrap; a new password wraps it again. */
export async function recover({ email, recoveryKey, password }) {
  const recovery = c.parseRecoveryKey(recoveryKey);
  const recoveryAuth = c.b64(await c.recoveryAuth(recovery));
  const got = await api.post("/accounts/recovery/keys", { email, recovery_auth: recoveryAuth });
  const identity = await c.unwrapIdentity(got.recovery_wrapped_keys, await c.recoveryWrap(recovery), got.kid);
  const kdf = c.newKdf(PBKDF2_ITERATIONS);
  const keys = await c.deriveAccount(password, kdf);
  const session = await api.post("/accounts/recovery", {
    email, recovery_auth: recoveryAuth, kdf: c.kdfToJson(kdf), auth: c.b64(keys.auth),
    wrapped_keys: await c.wrapBundle(identity.bundle, keys.wrap, identity.kid),
  });
  delete identity.bundle;
  adopt(session);
  identity.label = session.account.guardian.label;
  identity.public.label = identity.label;
  await store.saveIdentity(identity, email);
  app.identity = identity;
}

/**
 * A new password (§13): the current one opens this account's key bundle here, the new one
 * wraps it again under fresh KDF parameters; the server gets both auth keys and the new
 * wrap, never a wrapping key. Its other sessions end; the keys (and kid) stay the same.
 * False (and nothing sent) when `current` does not open the keys.
 */
export async function changePassword({ current, password }) {
  const a = app.account;
  const old = await c.deriveAccount(current, c.kdfFromJson(a.kdf));
  let opened;
  try { opened = await c.unwrapIdentity(a.wrapped_keys, old.wrap, a.kid, a.guardian.label); } catch (e) {
    if (e instanceof c.SealError) return false; // not the current password: nothing sent
    throw e;
  }
  const kdf = c.newKdf(PBKDF2_ITERATIONS);
  const keys = await c.deriveAccount(password, kdf);
  const body = { auth: c.b64(old.auth), kdf: c.kdfToJson(kdf), new_auth: c.b64(keys.auth), wrapped_keys: await c.wrapBundle(opened.bundle, keys.wrap, a.kid) };
  delete opened.bundle;
  adopt(await api.put("/accounts/me/password", body));
  return true;
}

// ------------------------------------------------------------------ families and keyrings

/**
 * The family's keyring as this browser trusts it: what it verified before, extended by what
 * the server has since; a server that rewrites history (a fork) is refused. A first sight is
 * trusted if it names this guardian's own keys (pairing and the invitation pin it, §4, §8).
 */
export async function verifiedKeyring(familyId, { headHash = null, serverHead = null } = {}) {
  const held = await store.loadKeyring(familyId);
  let ring = null;
  if (held) ring = await c.Keyring.fromJson(held, "stored keyring");
  // the server says nothing was added since: no need to fetch (a lie only delays news)
  if (ring && serverHead && serverHead.seq === ring.headSeq && serverHead.hash === ring.headHash && !headHash) return ring;
  const after = ring ? ring.headSeq : -1;
  const page = await api.get(`/families/${familyId}/keyring`, { after });
  const entries = page.entries.map((e, i) => c.envelopeFromJson(e, `keyring[${i}]`));
  ring = ring ? await ring.extendAll(entries) : await c.Keyring.fromEntries(entries);
  if (ring.family !== familyId) throw new c.ProtocolError("keyring", "belongs to another family");
  if (headHash && !(await ring.containsHead(headHash))) throw new c.ProtocolError("keyring", "does not reach the head from the invitation");
  const me = ring.guardians.get(app.identity.kid);
  if (!me || !c.sameKeys(me, app.identity.public)) throw new c.ProtocolError("keyring", "does not name this guardian's keys");
  await store.saveKeyring(familyId, ring.entries.map(c.envelopeToJson));
  return ring;
}

export async function loadFamilies(list = null) {
  list ??= await api.get("/families");
  const rings = await Promise.all(list.map((f) => verifiedKeyring(f.id, { serverHead: { seq: f.head_seq, hash: f.head_hash } })));
  app.families.clear();
  list.forEach((f, i) => app.families.set(f.id, { ...f, ring: rings[i] }));
  return [...app.families.values()];
}

export async function refreshFamily(familyId) {
  const info = await api.get(`/families/${familyId}`);
  const ring = await verifiedKeyring(familyId);
  const fam = { ...info, ring };
  app.families.set(familyId, fam);
  return fam;
}

/** Every device of every family, as [family, device status, keyring party]. */
export function allDevices() {
  const out = [];
  for (const fam of app.families.values()) {
    for (const d of fam.devices) if (d.status !== "removed") out.push({ fam, status: d, party: fam.ring.devices.get(d.id) });
  }
  return out;
}
export function findDevice(deviceId) {
  for (const fam of app.families.values()) {
    const status = fam.devices.find((d) => d.id === deviceId);
    if (status) return { fam, status, party: fam.ring.devices.get(deviceId) };
  }
  return null;
}
export function guardianLabel(fam, kid) {
  const g = fam.ring.guardians.get(kid) ?? fam.ring.ops.find((o) => o.party?.id === kid)?.party;
  return g ? g.label || kid.slice(0, 8) : kid.slice(0, 8);
}

// ------------------------------------------------------------------ messages to a device

/** Sign, seal to the device and every active guardian, and queue (§5); the message id. */
export async function send(fam, deviceId, type, payload, { seq = 0, retentionDays = null } = {}) {
  const { envelope, body } = await c.compose(app.identity, { type, family: fam.id, device: deviceId, payload, now: now(), seq });
  const sealed = await c.sealToDevice(envelope, body.id, fam.ring, deviceId);
  const post = { id: body.id, type, seq, sealed };
  if (retentionDays !== null) post.retention_days = retentionDays;
  await api.post(`${api.dev(fam.id, deviceId)}/messages`, post);
  return body.id;
}

/**
 * A delivery's signed ack, verified with the device's key from the keyring (a server cannot
 * make one): {result, reason, applied_at, policy_version}, or null while none came.
 */
export async function verifiedAck(fam, deviceId, delivery) {
  if (!delivery.ack) return null;
  const body = await c.verifyDeviceMessage(fam.ring, delivery.ack, deviceId, "ack");
  if (body.type !== "ack") throw new c.ProtocolError("ack.type", `${body.type} is not an ack`);
  const ack = readAck(body);
  if (ack.message !== delivery.id) throw new c.ProtocolError("ack.message", "acknowledges another message");
  return ack;
}

export const deliveries = (fam, deviceId, limit = 100) => api.get(`${api.dev(fam.id, deviceId)}/messages`, { limit });
export const delivery = (fam, deviceId, id) => api.get(`${api.dev(fam.id, deviceId)}/messages/${id}`);

/** A message a guardian of this family sent, reopened from the history (verified). */
export async function reopen(fam, deviceId, d) {
  if (!d.sealed) return null;
  const body = await c.openGuardianMessage(fam.ring, d.sealed, deviceId, d.id, app.identity.seal);
  if (body.type === "policy") return { body, policy: readPolicy(body) };
  if (body.type === "decision") return { body, decision: readDecision(body) };
  return { body };
}

/**
 * The newest policy sent to the device that this guardian can open, or null; with
 * `applied`, the newest the device acknowledged as applied (the policy in force).
 */
export async function latestPolicy(fam, deviceId, { applied = false, list = null } = {}) {
  for (const d of list ?? await deliveries(fam, deviceId)) {
    if (d.type !== "policy" || (applied && d.status !== "applied")) continue;
    try {
      const r = await reopen(fam, deviceId, d);
      if (r?.policy) return { delivery: d, policy: r.policy, sender: r.body.kid };
    } catch (e) {
      if (!(e instanceof c.ProtocolError)) throw e; // sealed before this guardian joined
    }
  }
  return null;
}

/**
 * The device's timezone, where its days start at midnight (the "rest of today" grant): the
 * policy in force says it, else the newest policy sent; the browser's own only when this
 * guardian can open neither (none sent yet). A guardian abroad still grants the child's day.
 */
export async function deviceTimeZone(fam, deviceId) {
  const list = await deliveries(fam, deviceId);
  const found = (await latestPolicy(fam, deviceId, { applied: true, list })) ?? (await latestPolicy(fam, deviceId, { list }));
  return found?.policy.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

// ------------------------------------------------------------------ the offline guardian code

export async function rememberCode(deviceId, secret, unlockMinutes, messageId) {
  await store.saveCode(deviceId, { key: await c.guardianCodeKey(secret), unlockMinutes, messageId });
}

/** Whether every guardian active in the keyring now holds a key `delivery` was sealed to. */
function readableByAll(fam, delivery) {
  const sealed = typeof delivery.sealed === "string" ? JSON.parse(delivery.sealed) : delivery.sealed;
  const readers = new Set(sealed.wraps.map((w) => w.to));
  return fam.ring.sealKeys.every((g) => readers.has(c.hex(g.seal)));
}

/**
 * The policy in force for a guardian admitted after it was sent (who could not open it, so
 * would edit the band's defaults instead): the same policy again as the next version,
 * sealed to the device and every guardian active now. Its id, or null when nothing needs it.
 */
export async function sharePolicy(fam, deviceId) {
  const latest = await latestPolicy(fam, deviceId);
  if (!latest || readableByAll(fam, latest.delivery)) return null;
  const dev = await api.get(api.dev(fam.id, deviceId));
  const version = Math.max(dev.policy_queued, dev.policy_applied, latest.policy.version) + 1;
  return send(fam, deviceId, "policy", { policy: { ...latest.policy, version } }, { seq: version, retentionDays: dev.retention_days });
}

/** The newest set_guardian_code decision sent to the device that this guardian can open
 *  (sealed to it): {delivery, secret, unlockMinutes}, or null. */
async function newestCodeSecret(fam, deviceId) {
  for (const d of await deliveries(fam, deviceId)) {
    if (d.type !== "decision") continue;
    let r = null;
    try { r = await reopen(fam, deviceId, d); } catch (e) { if (!(e instanceof c.ProtocolError)) throw e; }
    if (r?.decision?.kind === "set_guardian_code") return { delivery: d, secret: r.decision.secret, unlockMinutes: r.decision.unlock_minutes };
  }
  return null;
}

/** The device's guardian-code key: kept in IndexedDB, else reopened from the history. */
export async function guardianCodeKey(fam, deviceId) {
  const held = await store.loadCode(deviceId);
  if (held) return held;
  const found = await newestCodeSecret(fam, deviceId);
  if (!found) return null;
  await rememberCode(deviceId, found.secret, found.unlockMinutes, found.delivery.id);
  return store.loadCode(deviceId);
}

/**
 * Share the guardian-code secret with guardians admitted after it was sent (a sealed message
 * opens only for the keys it was sealed to, §9): the same secret again in a new
 * set_guardian_code decision, sealed to the device and every guardian active now. The codes
 * stay the same, so a tablet that is offline meanwhile keeps accepting them. The id of the
 * message sent, or null when every active guardian can already open the secret (or this
 * guardian cannot).
 */
export async function shareCodeSecret(fam, deviceId) {
  const found = await newestCodeSecret(fam, deviceId);
  if (!found) return null;
  if (readableByAll(fam, found.delivery)) return null;
  const id = await send(fam, deviceId, "decision", decisions.setGuardianCode(found.secret, found.unlockMinutes));
  await rememberCode(deviceId, found.secret, found.unlockMinutes, id);
  return id;
}
