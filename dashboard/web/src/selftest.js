// The crypto module against protocol/vectors, in the browser that runs the app. The built
// page selftest.html loads this; tests/web/test_crypto_vectors.py hands it the vector files
// and reads the results (every check, named, with what went wrong). It runs twice: with the
// browser's WebCrypto curves and with the @noble fallback a lagging browser would use.
// The other modules are exposed for their own tests (push socket, the charts' helpers).
import * as charts from "./charts.js";
import * as c from "./crypto.js";
import * as policy from "./policy.js";
import * as push from "./push.js";
import * as state from "./state.js";

async function refuses(fn, where) {
  try { await fn(); } catch (e) {
    if (!(e instanceof c.ProtocolError)) return `threw ${e}`;
    const got = e.where.replace(/^\.+/, "");
    return got === where ? null : `refused at ${JSON.stringify(got)}, expected ${JSON.stringify(where)} (${e.message})`;
  }
  return "was accepted";
}

const party = (keys, name) => ({ id: keys[name].id, sign: c.unhex(keys[name].sign, "", 32), seal: c.unhex(keys[name].seal, "", 32), label: "" });
const bytesOfJsonText = (text) => c.utf8(text);

export async function runVectors(v, { fallback = false } = {}) {
  c.forceFallback(fallback);
  const results = [];
  const check = async (name, fn) => {
    try {
      const problem = await fn();
      results.push({ name, ok: !problem, detail: problem || "" });
    } catch (e) { results.push({ name, ok: false, detail: `${e && e.stack || e}` }); }
  };
  const keys = v.keys;
  const identity = {};
  for (const [name, k] of Object.entries(keys)) {
    const sign = await c.importPrivate("Ed25519", c.unhex(k.sign_private, "", 32));
    const seal = await c.importPrivate("X25519", c.unhex(k.seal_private, "", 32));
    identity[name] = { kid: k.id, sign, seal };
    await check(`keys: ${name} public keys and id`, async () => {
      if (c.hex(sign.pub) !== k.sign || c.hex(seal.pub) !== k.seal) return "public keys differ";
      const id = k.kind === "device" ? await c.deviceId(sign.pub, seal.pub) : await c.guardianKid(sign.pub, seal.pub);
      return id === k.id ? null : `id ${id}`;
    });
  }

  for (const e of v.envelopes.valid) {
    await check(`envelope: ${e.name} signs to the same bytes`, async () => {
      const body = c.parseBody(c.utf8(e.body));
      if (c.hex(c.signingInput(e.purpose, c.utf8(e.body))) !== e.signing_input_hex) return "signing input differs";
      const signed = await c.signBody(body, identity[e.signer].sign);
      const json = c.envelopeToJson(signed);
      if (JSON.stringify(json) !== JSON.stringify(e.envelope)) return `got ${JSON.stringify(json)}`;
      return null;
    });
    await check(`envelope: ${e.name} verifies`, async () => {
      const env = c.envelopeFromJson(e.envelope);
      const body = await c.verifyEnvelope(env, party(keys, e.signer).sign, e.purpose);
      return c.fromUtf8(env.bodyBytes) === e.body && body.kid === keys[e.signer].id ? null : "body differs";
    });
  }
  for (const r of v.envelopes.refuse) {
    await check(`envelope refused: ${r.name}`, () => refuses(async () => {
      await c.verifyEnvelope(c.envelopeFromJson(r.envelope), party(keys, "guardian_a").sign, "guardian-message");
    }, r.where));
  }
  for (const r of v.envelopes.refuse_body) {
    await check(`body refused: ${r.name}`, () => refuses(() => c.parseBody(bytesOfJsonText(r.body)), r.where));
  }

  const chain = v.keyring.chain.map((x) => c.envelopeFromJson(x.envelope));
  for (let i = 0; i < chain.length; i++) {
    await check(`keyring: entry ${i} hash and state`, async () => {
      const ring = await c.Keyring.fromEntries(chain.slice(0, i + 1));
      const want = v.keyring.chain[i];
      if ((await c.entryHash(chain[i])) !== want.hash || ring.headHash !== want.hash) return "hash differs";
      const g = [...ring.guardians.keys()].sort(), d = [...ring.devices.keys()].sort();
      return JSON.stringify(g) === JSON.stringify(want.guardians) && JSON.stringify(d) === JSON.stringify(want.devices)
        ? null : `state ${JSON.stringify([g, d])}`;
    });
  }
  await check("keyring: a genesis made here is what Python makes", async () => {
    const a = keys.guardian_a;
    const id = { kid: a.id, sign: identity.guardian_a.sign, public: { ...party(keys, "guardian_a"), label: "guardian_a" } };
    const want = v.keyring.chain[0];
    const body = c.parseBody(c.utf8(want.body));
    const made = await c.makeGenesis(id, v.keyring.family, body.iat, body.id);
    return JSON.stringify(c.envelopeToJson(made)) === JSON.stringify(want.envelope) ? null : "differs";
  });
  const base = await c.Keyring.fromEntries(chain.slice(0, 2));
  for (const r of v.keyring.refuse_after_first_two) {
    await check(`keyring refused: ${r.name}`, () => refuses(() => base.extend(c.envelopeFromJson(r.envelope), ""), r.where));
  }

  for (const s of v.sealing.open) {
    for (const name of s.openers) {
      await check(`sealing: ${name} opens`, async () => {
        const pt = await c.openSealed(s.sealed, s.ctx, identity[name].seal);
        return c.fromUtf8(pt) === s.plaintext ? null : "plaintext differs";
      });
    }
    for (const name of s.not_openers) {
      await check(`sealing: ${name} cannot open`, () => refuses(() => c.openSealed(s.sealed, s.ctx, identity[name].seal), "sealed.wraps"));
    }
    await check("sealing: what this browser seals opens here", async () => {
      const recipients = s.openers.map((n) => identity[n].seal.pub);
      const sealed = await c.seal(c.utf8(s.plaintext), s.ctx, recipients);
      for (const n of s.openers) {
        if (c.fromUtf8(await c.openSealed(JSON.parse(JSON.stringify(sealed)), s.ctx, identity[n].seal)) !== s.plaintext) return `${n} failed`;
      }
      return null;
    });
  }
  for (const r of v.sealing.refuse) {
    await check(`sealing refused: ${r.name}`, () => refuses(() => c.openSealed(r.sealed, r.ctx, identity[r.opener].seal), r.where));
  }

  const p = v.pairing;
  await check("pairing: commitment, SAS, QR MAC and link", async () => {
    const dev = party(keys, p.device), g = party(keys, p.guardian);
    const nd = c.unb64(p.device_nonce, "nd"), ng = c.unb64(p.guardian_nonce, "ng");
    if ((await c.pairingCommitment(dev, nd)) !== p.commitment) return "commitment";
    if ((await c.pairingSas(p.commitment, dev, nd, g, ng)) !== p.sas) return "sas";
    if (c.b64(await c.qrMac(c.unb64(p.qr_secret, "s"), p.commitment, g, ng)) !== p.qr_mac) return "mac";
    const qr = c.parseQrUrl(p.qr_url);
    return qr.deviceId === dev.id && c.b64(qr.secret) === p.qr_secret && qr.code === "12345678" ? null : "qr";
  });

  const a = v.account;
  await check("account: master, auth, wrap, bundle, recovery", async () => {
    const kdf = c.kdfFromJson(a.kdf);
    if (c.hex(await c.masterKey(a.password, kdf)) !== a.master) return "master";
    const ak = await c.deriveAccount(a.password, kdf);
    if (c.b64(ak.auth) !== a.auth || c.b64(ak.wrap) !== a.wrap) return "auth/wrap";
    const id = await c.unwrapIdentity(a.wrapped_keys, ak.wrap, keys[a.guardian].id);
    if (c.hex(id.sign.pub) !== keys[a.guardian].sign || c.hex(id.seal.pub) !== keys[a.guardian].seal) return "unwrapped keys";
    if (id.sign.native && id.sign.native.extractable) return "the unwrapped signing key is extractable";
    if (id.seal.native && id.seal.native.extractable) return "the unwrapped sealing key is extractable";
    const rk = c.parseRecoveryKey(a.recovery_key);
    if (c.formatRecoveryKey(rk) !== a.recovery_key) return "recovery key format";
    if (c.b64(await c.recoveryAuth(rk)) !== a.recovery_auth || c.b64(await c.recoveryWrap(rk)) !== a.recovery_wrap) return "recovery";
    const other = { ...a.wrapped_keys };
    return refuses(() => c.unwrapIdentity(other, ak.auth, keys[a.guardian].id), "wrapped_keys");
  });
  await check("strict JSON: duplicate keys, floats, trailing data, bad base64", async () => {
    const cases = [
      ['{"a":1,"a":2}', "x"], ['{"a":1} x', "x"], ["[1,]", "x"], ['{"a":NaN}', "x"], ['"\u0001"', "x"],
    ];
    for (const [text, where] of cases) {
      const problem = await refuses(() => c.loads(c.utf8(text), where, 100), where);
      if (problem) return `${text}: ${problem}`;
    }
    if (!(c.loads(c.utf8('{"s":0.0}'), "x", 100).s instanceof c.JsonFloat)) return "0.0 read as an integer";
    const proto = c.loads(c.utf8('{"__proto__":{"x":1}}'), "x", 100);
    if (!Object.hasOwn(proto, "__proto__") || proto.x !== undefined) return "__proto__ became a prototype";
    for (const bad of ["AA==", "AB", "A", "A+"]) {
      if (await refuses(() => c.unb64(bad, "b"), "b")) return `base64 ${bad} accepted`;
    }
    return null;
  });
  await check("guardian code: RFC 4226 truncation over HMAC-SHA256 (RFC 6238's SHA-256 seed)", async () => {
    // RFC 6238 Appendix B, SHA-256 rows, with 8 digits and the 32-byte seed.
    const key = await c.guardianCodeKey(c.utf8("12345678901234567890123456789012"));
    const rows = [[59, "46119246"], [1111111109, "68084774"], [1234567890, "91819424"], [2000000000, "90698825"]];
    for (const [t, want] of rows) {
      const got = await c.guardianCode(key, t);
      if (got !== want) return `t=${t}: ${got}, expected ${want}`;
    }
    return null;
  });
  c.forceFallback(false);
  return results;
}

window.mmSelftest = { runVectors, charts, crypto: c, policy, push, state };
document.getElementById("status").textContent = "ready";
