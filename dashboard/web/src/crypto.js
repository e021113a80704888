// The browser's half of protocol/PROTOCOL.md: every byte format and every key operation the
// guardian's app performs, in one module that the rest of the app uses and never bypasses.
//
// Why one module: the server is an adversary of privacy, so everything that decides whether
// a byte string is trusted (strict JSON, signatures, the keyring, sealing contexts) must be
// written once and tested once, against the same known-answer vectors as the Python side
// (protocol/vectors, run in Chromium by tests/web/test_crypto_vectors.py).
//
// WebCrypto does the work (Ed25519, X25519, HKDF, PBKDF2, AES-GCM, HMAC, SHA-256); browsers
// that lack Ed25519/X25519 in WebCrypto (older in-app browsers) get @noble/curves and
// @hpke/dhkem-x25519 instead, loaded only then. Private keys are CryptoKeys imported with
// extractable=false wherever the browser allows it. Readers mirror protocol/encoding.py's
// `Fields`: an unknown, missing or mistyped key is a ProtocolError naming its field, in the
// same dotted form the Python side uses, so vectors can compare the `where` of refusals.

import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

// ------------------------------------------------------------------ errors

export class ProtocolError extends Error {
  constructor(where, problem) {
    super(where ? `${where}: ${problem}` : problem);
    this.name = "ProtocolError";
    this.where = where;
    this.problem = problem;
  }
}
export class SignatureError extends ProtocolError {
  constructor(where, problem) { super(where, problem); this.name = "SignatureError"; }
}
export class SealError extends ProtocolError {
  constructor(where, problem) { super(where, problem); this.name = "SealError"; }
}

// ------------------------------------------------------------------ bytes

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
export const MAX_INT = 2 ** 53 - 1;

export const utf8 = (text) => enc.encode(text);
export function fromUtf8(bytes, where = "") {
  try { return dec.decode(bytes); } catch { throw new ProtocolError(where, "not valid UTF-8"); }
}
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
export const randomBytes = (n) => crypto.getRandomValues(new Uint8Array(n));

/** `minormode/v1/<name>` and one zero byte: every signature, hash and KDF starts with one. */
export const dom = (name) => concat(utf8(`minormode/v1/${name}`), new Uint8Array([0]));

export function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}
export function unhex(text, where, size) {
  if (typeof text !== "string" || text.length !== 2 * size || !/^[0-9a-f]*$/.test(text)) {
    throw new ProtocolError(where, `expected ${2 * size} lowercase hex characters`);
  }
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HAS_NATIVE_BASE64 = typeof Uint8Array.fromBase64 === "function" && typeof Uint8Array.prototype.toBase64 === "function";
let nativeBase64 = HAS_NATIVE_BASE64; // Chromium 140+, Firefox 133+, Safari 18.2+
const B64_INDEX = Object.fromEntries([...B64].map((c, i) => [c, i]));

/** Unpadded base64url (RFC 4648 §5). */
export function b64(bytes) {
  if (nativeBase64) return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += B64[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}
/** Strict reader: no padding, no foreign characters, canonical trailing bits, sizes. */
export function unb64(text, where, { size = null, maxSize = null } = {}) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new ProtocolError(where, "not unpadded base64url");
  }
  const rest = text.length % 4;
  // the unused low bits of the last character must be zero (one canonical form per value)
  if (rest && (B64_INDEX[text[text.length - 1]] & (rest === 2 ? 0x0f : 0x03))) throw new ProtocolError(where, "not canonical base64url");
  let out;
  if (nativeBase64) {
    out = Uint8Array.fromBase64(text, { alphabet: "base64url", lastChunkHandling: "loose" });
  } else {
    out = new Uint8Array(Math.floor((text.length * 6) / 8));
    let bits = 0, acc = 0, at = 0;
    for (let k = 0; k < text.length; k++) {
      acc = ((acc << 6) | B64_INDEX[text[k]]) & 0xffffff;
      bits += 6;
      if (bits >= 8) { bits -= 8; out[at++] = (acc >> bits) & 255; }
    }
  }
  if (size !== null && out.length !== size) {
    throw new ProtocolError(where, `${out.length} bytes, expected ${size}`);
  }
  if (maxSize !== null && out.length > maxSize) {
    throw new ProtocolError(where, `${out.length} bytes, at most ${maxSize} allowed`);
  }
  return out;
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
export function base32(bytes) {
  let out = "", bits = 0, acc = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b; bits += 8;
    while (bits >= 5) { bits -= 5; out += B32[(acc >> bits) & 31]; }
    acc &= 0xff;
  }
  if (bits) out += B32[(acc << (5 - bits)) & 31];
  return out;
}
export function unbase32(text, where) {
  const out = [];
  let bits = 0, acc = 0;
  for (const c of text) {
    const v = B32.indexOf(c);
    if (v < 0) throw new ProtocolError(where, "not base32");
    acc = ((acc << 5) | v) & 0xffff; bits += 5;
    if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 255); }
  }
  return new Uint8Array(out);
}

// ------------------------------------------------------------------ strict JSON

/** A JSON number written with a fraction or exponent: never accepted where integers are due. */
export class JsonFloat {
  constructor(value) { this.value = value; }
  toJSON() { return this.value; }
}

const MAX_DEPTH = 500;

/**
 * RFC 8259 JSON, strictly: duplicate keys, NaN/Infinity, lone garbage and over-deep nesting
 * are refused; numbers with a fraction or exponent come back as JsonFloat so a reader can
 * refuse `0.0` where an integer is due (JSON.parse would turn it into 0).
 */
export function loads(data, where, maxBytes) {
  const bytes = typeof data === "string" ? utf8(data) : data;
  if (bytes.length > maxBytes) {
    throw new ProtocolError(where, `${bytes.length} bytes, at most ${maxBytes} allowed`);
  }
  const text = fromUtf8(bytes, where);
  let i = 0;
  const fail = (why) => { throw new ProtocolError(where, `not valid JSON (${why} at ${i})`); };
  const ws = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") return object(depth);
    if (c === "[") return array(depth);
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) { i += word.length; return v; }
    }
    return fail("unexpected character");
  };
  const object = (depth) => {
    i++;
    const out = {};
    ws();
    if (text[i] === "}") { i++; return out; }
    for (;;) {
      ws();
      if (text[i] !== '"') fail("expected a key");
      const key = string();
      if (Object.hasOwn(out, key)) fail(`duplicate key ${JSON.stringify(key)}`);
      ws();
      if (text[i++] !== ":") fail("expected ':'");
      Object.defineProperty(out, key, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
      ws();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "}") { i++; return out; }
      fail("expected ',' or '}'");
    }
  };
  const array = (depth) => {
    i++;
    const out = [];
    ws();
    if (text[i] === "]") { i++; return out; }
    for (;;) {
      out.push(value(depth + 1));
      ws();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "]") { i++; return out; }
      fail("expected ',' or ']'");
    }
  };
  const ESC = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
  const string = () => {
    i++;
    let out = "";
    for (;;) {
      // the run up to the next quote or backslash in one slice (most strings have neither)
      let j = i;
      while (j < text.length) {
        const ch = text.charCodeAt(j);
        if (ch === 34 || ch === 92) break;
        if (ch < 32) { i = j; fail("control character in a string"); }
        j++;
      }
      out += text.slice(i, j);
      i = j;
      const c = text[i];
      if (c === undefined) fail("unterminated string");
      if (c === '"') { i++; return out; }
      const e = text[i + 1];
      if (e === "u") {
        const h = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("bad \\u escape");
        out += String.fromCharCode(parseInt(h, 16));
        i += 6;
      } else if (e in ESC) { out += ESC[e]; i += 2; } else fail("bad escape");
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("bad number");
    i += m[0].length;
    return m[2] || m[3] ? new JsonFloat(Number(m[0])) : Number(m[0]);
  };
  const result = value(0);
  ws();
  if (i !== text.length) fail("extra data");
  return result;
}

/** Compact JSON bytes, as protocol/encoding.py's `dumps` writes them. */
export const dumps = (value) => utf8(JSON.stringify(value));

const typeName = (v) =>
  v === null ? "NoneType" : Array.isArray(v) ? "list" : v instanceof JsonFloat ? "float"
    : typeof v === "string" ? "str" : typeof v === "boolean" ? "bool" : typeof v === "number" ? "int"
      : typeof v === "object" ? "dict" : typeof v;
const codePoints = (s) => [...s].length;

/** A JSON object read key by key; `done()` refuses any key nobody asked for. */
export class Fields {
  constructor(value, where) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof JsonFloat) {
      throw new ProtocolError(where, `expected an object, got ${typeName(value)}`);
    }
    this.value = value;
    this.where = where;
    this.read = new Set();
  }
  at(key) { return this.where ? `${this.where}.${key}` : key; }
  has(key) { return Object.hasOwn(this.value, key); }
  raw(key, { optional = false } = {}) {
    this.read.add(key);
    if (!this.has(key)) {
      if (optional) return null;
      throw new ProtocolError(this.at(key), "missing");
    }
    return this.value[key];
  }
  text(key, { maxLen, minLen = 0, optional = false }) {
    const v = this.raw(key, { optional });
    if (v === null && optional) return "";
    if (typeof v !== "string") throw new ProtocolError(this.at(key), `expected a string, got ${typeName(v)}`);
    const n = codePoints(v);
    if (n < minLen || n > maxLen) throw new ProtocolError(this.at(key), `length ${n}, expected ${minLen}..${maxLen}`);
    for (const c of v) {
      if (c.charCodeAt(0) < 32 && c !== "\n" && c !== "\t") {
        throw new ProtocolError(this.at(key), "control characters are not allowed");
      }
    }
    return v;
  }
  choice(key, allowed) {
    const v = this.raw(key);
    if (!allowed.includes(v)) throw new ProtocolError(this.at(key), `${JSON.stringify(v)} is not one of ${allowed.join(", ")}`);
    return v;
  }
  integer(key, { low = 0, high = MAX_INT, optional = false } = {}) {
    const v = this.raw(key, { optional });
    if (v === null && optional) return null;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      throw new ProtocolError(this.at(key), `expected an integer, got ${typeName(v)}`);
    }
    if (v < low || v > high || !Number.isSafeInteger(v)) throw new ProtocolError(this.at(key), `${v} is outside ${low}..${high}`);
    return v;
  }
  int(key, opts = {}) { return this.integer(key, opts); }
  boolean(key) {
    const v = this.raw(key);
    if (typeof v !== "boolean") throw new ProtocolError(this.at(key), `expected true or false, got ${typeName(v)}`);
    return v;
  }
  hexid(key, size = 16, { optional = false } = {}) {
    const v = this.raw(key, { optional });
    if (v === null && optional) return null;
    unhex(v, this.at(key), size);
    return v;
  }
  hex(key, size = 16) { return this.hexid(key, size); }
  bytes(key, opts = {}) { return unb64(this.raw(key), this.at(key), opts); }
  obj(key) { return new Fields(this.raw(key), this.at(key)); }
  array(key, { maxItems }) {
    const v = this.raw(key);
    if (!Array.isArray(v)) throw new ProtocolError(this.at(key), `expected an array, got ${typeName(v)}`);
    if (v.length > maxItems) throw new ProtocolError(this.at(key), `${v.length} items, at most ${maxItems} allowed`);
    return v;
  }
  counts(key, maxEntries = 5000) {
    const sub = this.obj(key);
    const names = Object.keys(sub.value);
    if (names.length > maxEntries) throw new ProtocolError(sub.at(""), `at most ${maxEntries} entries`);
    const out = {};
    for (const name of names) {
      const n = codePoints(name);
      if (n < 1 || n > 255) throw new ProtocolError(sub.at(name.slice(0, 40)), "names are 1..255 characters");
      Object.defineProperty(out, name, { value: sub.int(name), enumerable: true, writable: true, configurable: true });
    }
    sub.done();
    return out;
  }
  done() {
    const extra = Object.keys(this.value).filter((k) => !this.read.has(k)).sort();
    if (extra.length) throw new ProtocolError(this.at(extra[0]), `unknown key (allowed: ${[...this.read].sort().join(", ")})`);
  }
}

// ------------------------------------------------------------------ primitives (WebCrypto)

const subtle = crypto.subtle;
const buf = (bytes) => (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer);

export const sha256 = async (bytes) => new Uint8Array(await subtle.digest("SHA-256", buf(bytes)));

export async function hmacSha256(key, data) {
  const k = key instanceof CryptoKey ? key : await subtle.importKey("raw", buf(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, buf(data)));
}

/** HKDF-SHA256 with an empty salt (PROTOCOL.md §13), 32 bytes. */
export async function hkdf(ikm, info, length = 32) {
  const key = await subtle.importKey("raw", buf(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new ArrayBuffer(0), info: buf(info) }, key, 8 * length);
  return new Uint8Array(bits);
}

export async function pbkdf2(password, salt, iterations) {
  const key = await subtle.importKey("raw", buf(utf8(password.normalize("NFKC"))), "PBKDF2", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: buf(salt), iterations }, key, 256);
  return new Uint8Array(bits);
}

const aesKey = (raw, usage) => subtle.importKey("raw", buf(raw), "AES-GCM", false, usage);
export async function aesGcmEncrypt(raw, nonce, plaintext, aad) {
  const key = await aesKey(raw, ["encrypt"]);
  return new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad) }, key, buf(plaintext)));
}
export async function aesGcmDecrypt(raw, nonce, ciphertext, aad) {
  const key = await aesKey(raw, ["decrypt"]);
  return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad) }, key, buf(ciphertext)));
}

// -- Ed25519 and X25519: native where the browser has them, @noble otherwise --------------

const PKCS8_PREFIX = {
  Ed25519: unhex("302e020100300506032b657004220420", "", 16),
  X25519: unhex("302e020100300506032b656e04220420", "", 16),
};
export const pkcs8FromRaw = (alg, raw) => concat(PKCS8_PREFIX[alg], raw);
function rawFromPkcs8(alg, der, where) {
  if (der.length !== 48 || !equalBytes(der.slice(0, 16), PKCS8_PREFIX[alg])) {
    throw new ProtocolError(where, `not an ${alg} private key (PKCS#8)`);
  }
  return der.slice(16);
}

let nativeSupport = null;
let forcedFallback = false;
/** Tests: run everything through the fallback path, as a lagging browser would. */
export function forceFallback(on) { forcedFallback = on; nativeSupport = null; suites = null; nativeBase64 = HAS_NATIVE_BASE64 && !on; }

/** Whether WebCrypto here does Ed25519 and X25519 (Chromium 137+, Firefox 129+, Safari 17+). */
export async function hasNativeCurves() {
  if (forcedFallback) return false;
  if (nativeSupport === null) {
    nativeSupport = (async () => {
      try {
        await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
        await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
        return true;
      } catch { return false; }
    })();
  }
  return nativeSupport;
}
let nobleModule = null;
const noble = () => (nobleModule ??= import("@noble/curves/ed25519.js"));

/**
 * A private key as the app holds it: `{alg, native: CryptoKey}` (non-extractable) or, in the
 * fallback, `{alg, raw}`; always with `pub`, the raw public key.
 */
export async function importPrivate(alg, raw, { extractable = false } = {}) {
  if (await hasNativeCurves()) {
    const usage = alg === "Ed25519" ? ["sign"] : ["deriveBits"];
    const der = buf(pkcs8FromRaw(alg, raw));
    // The public key: from a transient extractable import's JWK (the raw bytes are in this
    // function's memory anyway); the key the app keeps is imported non-extractable.
    const probe = await subtle.importKey("pkcs8", der, { name: alg }, true, usage);
    const jwk = await subtle.exportKey("jwk", probe);
    const native = await subtle.importKey("pkcs8", der, { name: alg }, extractable, usage);
    return { alg, native, pub: unb64(jwk.x, "jwk.x", { size: 32 }) };
  }
  const { ed25519, x25519 } = await noble();
  const pub = alg === "Ed25519" ? ed25519.getPublicKey(raw) : x25519.getPublicKey(raw);
  return { alg, raw: raw.slice(), pub };
}

/** A fresh key pair; `pkcs8` is returned once, for wrapping into the account's key bundle. */
export async function generatePrivate(alg) {
  let raw;
  if (await hasNativeCurves()) {
    const usage = alg === "Ed25519" ? ["sign", "verify"] : ["deriveBits"];
    const pair = await subtle.generateKey({ name: alg }, true, usage);
    raw = rawFromPkcs8(alg, new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey)), "generated");
  } else {
    raw = randomBytes(32);
  }
  const key = await importPrivate(alg, raw);
  return { key, pkcs8: pkcs8FromRaw(alg, raw) };
}

export async function edSign(key, message) {
  if (key.native) return new Uint8Array(await subtle.sign("Ed25519", key.native, buf(message)));
  return (await noble()).ed25519.sign(message, key.raw);
}

const verifyKeys = new Map();
export async function edVerify(pub, sig, message) {
  if (await hasNativeCurves()) {
    const id = hex(pub);
    let key = verifyKeys.get(id);
    if (!key) {
      key = subtle.importKey("raw", buf(pub), { name: "Ed25519" }, false, ["verify"]);
      verifyKeys.set(id, key);
    }
    try {
      return await subtle.verify("Ed25519", await key, buf(sig), buf(message));
    } catch { verifyKeys.delete(id); return false; }
  }
  try { return (await noble()).ed25519.verify(sig, message, pub, { zip215: false }); } catch { return false; }
}

// -- HPKE (RFC 9180): DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM -----------------

let suites = null;
async function hpke() {
  if (!suites) {
    suites = (async () => {
      if (await hasNativeCurves()) {
        return { native: true, suite: new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() }) };
      }
      const { DhkemX25519HkdfSha256: NobleKem } = await import("@hpke/dhkem-x25519");
      const kem = new NobleKem();
      return { native: false, kem, suite: new CipherSuite({ kem, kdf: new HkdfSha256(), aead: new Aes128Gcm() }) };
    })();
  }
  return suites;
}
async function hpkeSeal(recipientPub, info, plaintext) {
  const { suite } = await hpke();
  const recipientPublicKey = await suite.kem.deserializePublicKey(buf(recipientPub));
  const { ct, enc: encapsulated } = await suite.seal({ recipientPublicKey, info: buf(info) }, buf(plaintext));
  return concat(new Uint8Array(encapsulated), new Uint8Array(ct));
}
async function hpkeOpen(key, info, wrapped) {
  const h = await hpke();
  const recipientKey = key.native ?? (await h.kem.importKey("raw", buf(key.raw), false));
  const pt = await h.suite.open({ recipientKey, enc: buf(wrapped.slice(0, 32)), info: buf(info) }, buf(wrapped.slice(32)));
  return new Uint8Array(pt);
}

// ------------------------------------------------------------------ ids and parties (§2)

export const deviceId = async (sign, seal) => hex((await sha256(concat(dom("device-id"), sign, seal))).slice(0, 16));
export const guardianKid = async (sign, seal) => hex((await sha256(concat(dom("guardian-key"), sign, seal))).slice(0, 16));
export const MAX_LABEL = 64;

export const partyToJson = (p, idKey) => ({ [idKey]: p.id, sign: hex(p.sign), seal: hex(p.seal), label: p.label });

/** `{id_key, sign, seal, label}`; the id must be the hash of the two keys. */
export async function partyFromJson(value, where, idKey) {
  const f = new Fields(value, where);
  const id = f.hex(idKey);
  const sign = unhex(f.raw("sign"), f.at("sign"), 32);
  const seal = unhex(f.raw("seal"), f.at("seal"), 32);
  const label = f.text("label", { maxLen: MAX_LABEL });
  f.done();
  const derive = idKey === "id" ? deviceId : guardianKid;
  if ((await derive(sign, seal)) !== id) throw new ProtocolError(f.at(idKey), "does not match the keys it names");
  return { id, sign, seal, label };
}
export const sameKeys = (a, b) => a.id === b.id && equalBytes(a.sign, b.sign) && equalBytes(a.seal, b.seal);

// ------------------------------------------------------------------ envelopes (§3)

export const MAX_BODY = 262_144;
export const MAX_ENVELOPE = 360_000;
const DAY = 86_400;
export const FUTURE_TOLERANCE = 600;
export const PURPOSE = {
  keyring: "keyring", policy: "guardian-message", decision: "guardian-message", consent: "guardian-message",
  ack: "device-message", request: "device-message", summary: "device-message", receipt: "device-message",
  catalogue: "device-message", paired: "device-message",
};
export const MESSAGE_TYPES = Object.keys(PURPOSE);
export const MAX_LIFETIME = {
  keyring: 36_525 * DAY, policy: 30 * DAY, decision: 8 * DAY, consent: 30 * DAY,
  ack: 30 * DAY, request: 30 * DAY, summary: 30 * DAY, receipt: 30 * DAY, catalogue: 30 * DAY, paired: 30 * DAY,
};
export const newId = () => hex(randomBytes(16));

export const envelopeToJson = (e) => ({ v: 1, kid: e.kid, body: b64(e.bodyBytes), sig: b64(e.sig) });
export const encodeEnvelope = (e) => dumps(envelopeToJson(e));

export function envelopeFromJson(value, where = "envelope") {
  const f = new Fields(value, where);
  const v = f.int("v");
  if (v !== 1) throw new ProtocolError(f.at("v"), `version ${v} is not 1`);
  const kid = f.hex("kid");
  const bodyBytes = f.bytes("body", { maxSize: MAX_BODY });
  const sig = f.bytes("sig", { size: 64 });
  f.done();
  return { kid, bodyBytes, sig };
}
export const parseEnvelope = (data, where = "envelope") => envelopeFromJson(loads(data, where, MAX_ENVELOPE), where);

function checkBodyFields(body, where) {
  if ((body.type === "keyring") !== (body.device === "")) {
    throw new ProtocolError(`${where}.device`, "empty for keyring entries and only for them");
  }
  if (!(body.iat < body.exp)) throw new ProtocolError(`${where}.exp`, `${body.exp} is not after iat ${body.iat}`);
  if (body.exp - body.iat > MAX_LIFETIME[body.type]) {
    throw new ProtocolError(`${where}.exp`, `lifetime ${body.exp - body.iat} s exceeds the ${MAX_LIFETIME[body.type]} s allowed for ${body.type}`);
  }
}

export function parseBody(bodyBytes, where = "body") {
  const f = new Fields(loads(bodyBytes, where, MAX_BODY), where);
  const type = f.choice("type", MESSAGE_TYPES);
  const family = f.hex("family");
  const device = f.raw("device") === "" ? "" : f.hex("device");
  const body = {
    type, family, device, id: f.hex("id"), seq: f.int("seq"), iat: f.int("iat"), exp: f.int("exp"),
    kid: f.hex("kid"), payload: f.obj("payload").value,
  };
  f.done();
  checkBodyFields(body, where);
  return body;
}

export const signingInput = (purpose, bodyBytes) => concat(dom(purpose), bodyBytes);

/** Serialise a body once and sign those bytes; they travel as they are. */
export async function signBody(body, key) {
  checkBodyFields(body, "body");
  const bodyBytes = dumps({
    type: body.type, family: body.family, device: body.device, id: body.id, seq: body.seq,
    iat: body.iat, exp: body.exp, kid: body.kid, payload: body.payload,
  });
  if (bodyBytes.length > MAX_BODY) throw new ProtocolError("body", `${bodyBytes.length} bytes, at most ${MAX_BODY} allowed`);
  return { kid: body.kid, bodyBytes, sig: await edSign(key, signingInput(PURPOSE[body.type], bodyBytes)) };
}

/** Check the signature over the received bytes, then parse; the type must fit the purpose. */
export async function verifyEnvelope(envelope, signerPub, purpose, where = "envelope") {
  if (!(await edVerify(signerPub, envelope.sig, signingInput(purpose, envelope.bodyBytes)))) {
    throw new SignatureError(`${where}.sig`, `does not verify for signer ${envelope.kid} as a ${purpose}`);
  }
  const body = parseBody(envelope.bodyBytes, `${where}.body`);
  if (body.kid !== envelope.kid) throw new SignatureError(`${where}.kid`, `envelope says ${envelope.kid}, body says ${body.kid}`);
  if (PURPOSE[body.type] !== purpose) throw new SignatureError(`${where}.body.type`, `a ${body.type} is not a ${purpose}`);
  return body;
}

/**
 * Sign a payload as a message of `family` for `device`, issued at `now` (protocol.compose).
 * `identity` = {kid, sign: private key}.
 */
export async function compose(identity, { type, family, device, payload, now, seq = 0, lifetime = null, id = null }) {
  const body = {
    type, family, device, id: id ?? newId(), seq, iat: now, exp: now + (lifetime ?? MAX_LIFETIME[type]),
    kid: identity.kid, payload,
  };
  return { envelope: await signBody(body, identity.sign), body };
}

// ------------------------------------------------------------------ sealing (§9)

const MAX_RECIPIENTS = 64;
const MAX_PLAINTEXT = 1_048_576;
const WRAP_BYTES = 80;
const sealLabel = (ctx) => concat(dom("seal"), utf8(ctx));
function checkCtx(ctx, where) {
  if (typeof ctx !== "string" || ctx.length < 1 || ctx.length > 200 || !/^[\x20-\x7e]+$/.test(ctx)) {
    throw new ProtocolError(where, "a context is 1..200 printable ASCII characters");
  }
}
export const ctx = {
  guardianMessage: (family, device, id) => `guardian-message/${family}/${device}/${id}`,
  request: (family, device, id) => `request/${family}/${device}/${id}`,
  summary: (family, device, day) => `summary/${family}/${device}/${day}`,
  catalogue: (family, device) => `catalogue/${family}/${device}`,
};

/** One AES-256-GCM ciphertext, its key HPKE-wrapped to each recipient's X25519 key. */
export async function seal(plaintext, context, recipients) {
  checkCtx(context, "ctx");
  if (recipients.length < 1 || recipients.length > MAX_RECIPIENTS) {
    throw new ProtocolError("recipients", `${recipients.length}; expected 1..${MAX_RECIPIENTS}`);
  }
  if (plaintext.length > MAX_PLAINTEXT) throw new ProtocolError("plaintext", `${plaintext.length} bytes, at most ${MAX_PLAINTEXT}`);
  const contentKey = randomBytes(32);
  const nonce = randomBytes(12);
  const label = sealLabel(context);
  const ct = await aesGcmEncrypt(contentKey, nonce, plaintext, label);
  const wraps = [];
  const seen = new Set();
  for (const pub of recipients) {
    const to = hex(pub);
    if (seen.has(to)) continue;
    seen.add(to);
    wraps.push({ to, key: b64(await hpkeSeal(pub, label, contentKey)) });
  }
  return { v: 1, ctx: context, wraps, nonce: b64(nonce), ct: b64(ct) };
}

export function sealedFromJson(value, where = "sealed") {
  const f = new Fields(value, where);
  if (f.int("v") !== 1) throw new ProtocolError(f.at("v"), "version is not 1");
  const context = f.raw("ctx");
  checkCtx(context, f.at("ctx"));
  const wraps = f.array("wraps", { maxItems: MAX_RECIPIENTS }).map((w, i) => {
    const wf = new Fields(w, `${f.at("wraps")}[${i}]`);
    const to = wf.raw("to");
    unhex(to, wf.at("to"), 32);
    const key = wf.bytes("key", { size: WRAP_BYTES });
    wf.done();
    return { to, key };
  });
  if (!wraps.length) throw new ProtocolError(f.at("wraps"), "no recipients");
  const nonce = f.bytes("nonce", { size: 12 });
  const ct = f.bytes("ct", { maxSize: MAX_PLAINTEXT + 16 });
  f.done();
  return { ctx: context, wraps, nonce, ct };
}

/** The plaintext, if `sealedJson` is for this key and this context; SealError otherwise. */
export async function openSealed(sealedJson, expectedCtx, sealKey) {
  const sealed = sealedFromJson(sealedJson);
  if (sealed.ctx !== expectedCtx) throw new SealError("sealed.ctx", `${JSON.stringify(sealed.ctx)} is not the expected ${JSON.stringify(expectedCtx)}`);
  const me = hex(sealKey.pub);
  const wrap = sealed.wraps.find((w) => w.to === me);
  if (!wrap) throw new SealError("sealed.wraps", "not sealed to this key");
  const label = sealLabel(sealed.ctx);
  let contentKey;
  try { contentKey = await hpkeOpen(sealKey, label, wrap.key); } catch {
    throw new SealError("sealed.wraps", "the key wrap does not open (tampered or another context)");
  }
  if (contentKey.length !== 32) throw new SealError("sealed.wraps", "the wrapped key has the wrong size");
  try { return await aesGcmDecrypt(contentKey, sealed.nonce, sealed.ct, label); } catch {
    throw new SealError("sealed.ct", "does not open (tampered)");
  }
}

// ------------------------------------------------------------------ the keyring (§4)

export const GENESIS_PREV = "0".repeat(64);
export const OPS = ["genesis", "add_guardian", "remove_guardian", "add_device", "remove_device"];
export const entryHash = async (entry) => hex(await sha256(concat(dom("keyring-entry"), entry.bodyBytes)));

async function parseChange(payload, where) {
  const f = new Fields(payload, where);
  const op = f.choice("op", OPS);
  const prev = f.hex("prev", 32);
  let party = null, target = null;
  if (op === "genesis" || op === "add_guardian") party = await partyFromJson(f.raw("guardian"), f.at("guardian"), "kid");
  else if (op === "add_device") party = await partyFromJson(f.raw("device"), f.at("device"), "id");
  else target = f.hex("target");
  f.done();
  return { op, prev, party, target };
}

/** An immutable keyring state: `extend` returns a new one or throws (nothing half-applied). */
export class Keyring {
  constructor(family, guardians, devices, ever, headSeq, headHash, entries, ops) {
    Object.assign(this, { family, guardians, devices, ever, headSeq, headHash, entries, ops });
    Object.freeze(this);
  }

  static async fromEntries(entries, where = "keyring") {
    if (!entries.length) throw new ProtocolError(where, "a keyring has at least its genesis entry");
    if (entries.length > 1000) throw new ProtocolError(where, `${entries.length} entries, at most 1000`);
    let ring = await Keyring.genesis(entries[0], `${where}[0]`);
    for (let i = 1; i < entries.length; i++) ring = await ring.extend(entries[i], `${where}[${i}]`);
    return ring;
  }

  static async fromJson(list, where = "keyring") {
    if (!Array.isArray(list)) throw new ProtocolError(where, "expected an array of entries");
    return Keyring.fromEntries(list.map((v, i) => envelopeFromJson(v, `${where}[${i}]`)), where);
  }

  static async genesis(entry, where = "keyring[0]") {
    const body = parseBody(entry.bodyBytes, `${where}.body`);
    if (body.type !== "keyring") throw new ProtocolError(`${where}.body.type`, "not a keyring entry");
    const change = await parseChange(body.payload, `${where}.body.payload`);
    if (change.op !== "genesis" || body.seq !== 0 || change.prev !== GENESIS_PREV) {
      throw new ProtocolError(where, "the first entry must be a genesis with seq 0 and a zero prev");
    }
    if (entry.kid !== change.party.id) throw new SignatureError(`${where}.kid`, "a genesis is signed by the guardian it adds");
    await verifyEnvelope(entry, change.party.sign, "keyring", where);
    const g = change.party;
    return new Keyring(body.family, new Map([[g.id, g]]), new Map(), new Set([g.id]), 0, await entryHash(entry), [entry],
      [{ seq: 0, op: "genesis", party: g, target: null, kid: entry.kid, iat: body.iat }]);
  }

  async extend(entry, where = "keyring entry") {
    const signer = this.guardians.get(entry.kid);
    if (!signer) throw new SignatureError(`${where}.kid`, `${entry.kid} is not an active guardian of this family`);
    const body = await verifyEnvelope(entry, signer.sign, "keyring", where);
    if (body.type !== "keyring") throw new ProtocolError(`${where}.type`, "not a keyring entry");
    const change = await parseChange(body.payload, `${where}.payload`);
    if (body.family !== this.family) throw new ProtocolError(`${where}.family`, `${body.family} is not this keyring's family ${this.family}`);
    if (body.seq !== this.headSeq + 1) throw new ProtocolError(`${where}.seq`, `${body.seq} does not follow the head ${this.headSeq}`);
    if (change.prev !== this.headHash) throw new ProtocolError(`${where}.payload.prev`, "does not name the head entry (a fork)");
    const guardians = new Map(this.guardians), devices = new Map(this.devices), ever = new Set(this.ever);
    if (change.op === "genesis") throw new ProtocolError(`${where}.payload.op`, "a keyring has one genesis");
    if (change.party) {
      if (ever.has(change.party.id)) throw new ProtocolError(`${where}.payload`, `${change.party.id} was added before`);
      ever.add(change.party.id);
      (change.op === "add_guardian" ? guardians : devices).set(change.party.id, change.party);
    } else {
      const pool = change.op === "remove_guardian" ? guardians : devices;
      if (!pool.has(change.target)) throw new ProtocolError(`${where}.payload.target`, `${change.target} is not active`);
      if (change.op === "remove_guardian" && guardians.size === 1) {
        throw new ProtocolError(`${where}.payload.target`, "the last guardian cannot be removed");
      }
      pool.delete(change.target);
    }
    return new Keyring(this.family, guardians, devices, ever, body.seq, await entryHash(entry), [...this.entries, entry],
      [...this.ops, { seq: body.seq, op: change.op, party: change.party, target: change.target, kid: entry.kid, iat: body.iat }]);
  }

  /** Skip entries already held (same hash at the same seq), extend with the rest. */
  async extendAll(entries, where = "keyring") {
    let ring = this;
    for (let i = 0; i < entries.length; i++) {
      const body = parseBody(entries[i].bodyBytes, `${where}[${i}].body`);
      if (body.seq <= ring.headSeq) {
        if ((await entryHash(entries[i])) !== (await entryHash(ring.entries[body.seq]))) {
          throw new ProtocolError(`${where}[${i}]`, `entry ${body.seq} differs from the one held (a fork)`);
        }
        continue;
      }
      ring = await ring.extend(entries[i], `${where}[${i}]`);
    }
    return ring;
  }

  async containsHead(headHash) {
    for (const e of this.entries) if ((await entryHash(e)) === headHash) return true;
    return false;
  }

  /** Every active guardian, by kid: what the child's data is sealed to. */
  get sealKeys() { return [...this.guardians.keys()].sort().map((k) => this.guardians.get(k)); }

  /** The next entry, signed by `identity` (checked by `extend` like any other). */
  async entry(identity, op, { party = null, target = null, now, id = null }) {
    return makeEntry(this.family, this.headSeq + 1, this.headHash, identity, op, party, target, now, id);
  }
}

async function makeEntry(family, seq, prev, identity, op, party, target, now, id) {
  const payload = { op, prev };
  if (op === "genesis" || op === "add_guardian") payload.guardian = partyToJson(party, "kid");
  else if (op === "add_device") payload.device = partyToJson(party, "id");
  else payload.target = target;
  const body = { type: "keyring", family, device: "", id: id ?? newId(), seq, iat: now, exp: now + MAX_LIFETIME.keyring, kid: identity.kid, payload };
  return signBody(body, identity.sign);
}
export const makeGenesis = (identity, family, now, id = null) =>
  makeEntry(family, 0, GENESIS_PREV, identity, "genesis", identity.public, null, now, id);

// ------------------------------------------------------------------ guardian and device messages

/** A guardian message sealed to its device and to every active guardian (§5). */
export async function sealToDevice(envelope, messageId, ring, device) {
  const target = ring.devices.get(device);
  if (!target) throw new ProtocolError("device", `${device} is not an active device of family ${ring.family}`);
  const readers = [target.seal, ...ring.sealKeys.map((g) => g.seal)];
  return seal(encodeEnvelope(envelope), ctx.guardianMessage(ring.family, device, messageId), readers);
}

/** Verify a device-signed message (an ack, a request, a summary) against the keyring. */
export async function verifyDeviceMessage(ring, data, device, where = "device message") {
  const envelope = typeof data === "object" && !(data instanceof Uint8Array) ? envelopeFromJson(data, where) : parseEnvelope(data, where);
  // a device message is authentic if its key signed it, even after the device's removal
  // (its unpairing receipt arrives then); authority is not in question for what a device says
  const party = ring.devices.get(envelope.kid) ?? everAdded(ring, envelope.kid, "add_device");
  if (!party || envelope.kid !== device) throw new SignatureError(`${where}.kid`, `${envelope.kid} is not device ${device} of this family`);
  const body = await verifyEnvelope(envelope, party.sign, "device-message", where);
  if (body.family !== ring.family || body.device !== device) throw new SignatureError(`${where}.body`, "not from this family's device");
  return body;
}

/** A guardian message the app (or another guardian) sent: open it and check its signer. */
export async function openGuardianMessage(ring, sealedJson, device, messageId, sealKey, where = "message") {
  const inner = await openSealed(sealedJson, ctx.guardianMessage(ring.family, device, messageId), sealKey);
  const envelope = parseEnvelope(inner, where);
  // history: a message a since-removed guardian signed is still shown as theirs
  const signer = ring.guardians.get(envelope.kid) ?? everAdded(ring, envelope.kid, "add_guardian");
  if (!signer) throw new SignatureError(`${where}.kid`, `${envelope.kid} is not a guardian of this family`);
  const body = await verifyEnvelope(envelope, signer.sign, "guardian-message", where);
  if (body.family !== ring.family || body.device !== device || body.id !== messageId) {
    throw new SignatureError(`${where}.body`, "not this family's message for this device");
  }
  return body;
}
function everAdded(ring, id, op) {
  return ring.ops.find((o) => o.party && o.party.id === id && (o.op === op || (op === "add_guardian" && o.op === "genesis")))?.party;
}

/** A sealed device message (request, summary, catalogue): open, verify, match its context. */
export async function openFromDevice(ring, sealedJson, context, device, sealKey) {
  const inner = await openSealed(sealedJson, context, sealKey);
  const body = await verifyDeviceMessage(ring, inner, device);
  const last = context.split("/").pop();
  if (!context.startsWith(`${body.type}/`) || (body.type === "request" && last !== body.id)) {
    throw new ProtocolError("sealed.ctx", `${context} does not match the ${body.type} inside`);
  }
  return body;
}

// ------------------------------------------------------------------ pairing (§7)

export const pairingCommitment = async (device, nonce) => hex(await sha256(concat(dom("pair-commit"), device.sign, device.seal, nonce)));

export async function pairingSas(commit, device, deviceNonce, guardian, guardianNonce) {
  const t = await sha256(concat(dom("pair-sas"), unhex(commit, "commitment", 32), device.sign, device.seal, deviceNonce, guardian.sign, guardian.seal, guardianNonce));
  let n = 0n;
  for (const b of t.slice(0, 5)) n = (n << 8n) | BigInt(b);
  return (n % 1_000_000n).toString().padStart(6, "0");
}
export const qrMac = (secret, commit, guardian, guardianNonce) =>
  hmacSha256(secret, concat(dom("pair-qr"), unhex(commit, "commitment", 32), guardian.sign, guardian.seal, guardianNonce));
export const formatSas = (s) => `${s.slice(0, 3)} ${s.slice(3)}`;
export const formatCode = (c) => `${c.slice(0, 4)} ${c.slice(4)}`;

/** The fragment of a pairing QR link (§7.3): `v=1&c=<code>&d=<device id>&s=<secret>`. */
export function parseQrFragment(fragment) {
  const text = fragment.startsWith("#") ? fragment.slice(1) : fragment;
  const pairs = text.split("&").map((p) => {
    const at = p.indexOf("=");
    if (at < 1) throw new ProtocolError("qr", "not a pairing link");
    return [decodeURIComponent(p.slice(0, at)), decodeURIComponent(p.slice(at + 1))];
  });
  const fields = Object.fromEntries(pairs);
  const keys = Object.keys(fields).sort().join(",");
  if (pairs.length !== Object.keys(fields).length || fields.v !== "1" || keys !== "c,d,s,v") {
    throw new ProtocolError("qr", "not a minormode v1 pairing link");
  }
  if (!/^[0-9]{8}$/.test(fields.c)) throw new ProtocolError("qr.c", "a pairing code is 8 digits");
  unhex(fields.d, "qr.d", 16);
  return { code: fields.c, deviceId: fields.d, secret: unb64(fields.s, "qr.s", { size: 16 }) };
}
export function parseQrUrl(url) {
  const at = url.indexOf("#");
  if (at < 0) throw new ProtocolError("qr", "not a pairing link");
  return parseQrFragment(url.slice(at + 1));
}

// ------------------------------------------------------------------ accounts (§13)

export function kdfFromJson(value, where = "kdf") {
  const f = new Fields(value, where);
  const alg = f.choice("alg", ["pbkdf2-sha256"]);
  const params = { alg, iterations: f.int("iterations", { low: 100_000, high: 10_000_000 }), salt: f.bytes("salt", { size: 16 }) };
  f.done();
  return params;
}
export const kdfToJson = (k) => ({ alg: k.alg, iterations: k.iterations, salt: b64(k.salt) });
export const newKdf = (iterations = 600_000) => ({ alg: "pbkdf2-sha256", iterations, salt: randomBytes(16) });

export const masterKey = (password, kdf) => pbkdf2(password, kdf.salt, kdf.iterations);
export async function deriveAccount(password, kdf) {
  const master = await masterKey(password, kdf);
  return { auth: await hkdf(master, dom("account-auth")), wrap: await hkdf(master, dom("account-wrap")) };
}
export const recoveryAuth = (recovery) => hkdf(recovery, dom("account-recovery-auth"));
export const recoveryWrap = (recovery) => hkdf(recovery, dom("account-recovery-wrap"));
export const newRecoveryKey = () => randomBytes(32);
export function formatRecoveryKey(key) {
  const text = base32(key);
  return text.match(/.{1,4}/g).join("-");
}
export function parseRecoveryKey(text) {
  const clean = text.replace(/[\s-]/g, "").toUpperCase();
  let key = null;
  try { key = unbase32(clean, "recovery_key"); } catch { key = null; }
  if (!key || key.length !== 32 || clean.length !== 52) {
    throw new ProtocolError("recovery_key", "not a recovery key (52 letters and digits)");
  }
  return key;
}

/** A new guardian identity: two key pairs, their kid, and the PKCS#8 bundle to wrap once. */
export async function newIdentity(label) {
  const s = await generatePrivate("Ed25519");
  const x = await generatePrivate("X25519");
  const kid = await guardianKid(s.key.pub, x.key.pub);
  const identity = { kid, label, sign: s.key, seal: x.key, public: { id: kid, sign: s.key.pub, seal: x.key.pub, label } };
  const bundle = dumps({ v: 1, sign: b64(s.pkcs8), seal: b64(x.pkcs8) });
  return { identity, bundle };
}

export async function wrapBundle(bundle, key, kid) {
  const nonce = randomBytes(12);
  const ct = await aesGcmEncrypt(key, nonce, bundle, concat(dom("account-keys"), utf8(kid)));
  return { nonce: b64(nonce), ct: b64(ct) };
}

/** Open a wrapped key bundle; the keys come back non-extractable and must hash to `kid`. */
export async function unwrapIdentity(wrapped, key, kid, label = "") {
  const f = new Fields(wrapped, "wrapped_keys");
  const nonce = f.bytes("nonce", { size: 12 });
  const ct = f.bytes("ct", { maxSize: 4096 });
  f.done();
  let bundle;
  try { bundle = await aesGcmDecrypt(key, nonce, ct, concat(dom("account-keys"), utf8(kid))); } catch {
    throw new SealError("wrapped_keys", "does not open with this key (wrong password?)");
  }
  const b = new Fields(loads(bundle, "key bundle", 4096), "key bundle");
  if (b.int("v") !== 1) throw new ProtocolError("key bundle.v", "unknown version");
  const signDer = b.bytes("sign", { maxSize: 256 });
  const sealDer = b.bytes("seal", { maxSize: 256 });
  b.done();
  const sign = await importPrivate("Ed25519", rawFromPkcs8("Ed25519", signDer, "key bundle.sign"));
  const sealKey = await importPrivate("X25519", rawFromPkcs8("X25519", sealDer, "key bundle.seal"));
  const actual = await guardianKid(sign.pub, sealKey.pub);
  if (actual !== kid) throw new ProtocolError("key bundle", `holds the keys of ${actual}, not ${kid}`);
  return { kid, label, sign, seal: sealKey, public: { id: kid, sign: sign.pub, seal: sealKey.pub, label }, bundle };
}

// ------------------------------------------------------------------ the offline guardian code (§10)

export const CODE_STEP = 30;
export async function guardianCodeKey(secret) {
  return subtle.importKey("raw", buf(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}
/** RFC 4226 truncation over HMAC-SHA256, 8 digits, counter = floor(time / 30). */
export async function guardianCode(key, unixTime) {
  const counter = Math.floor(unixTime / CODE_STEP);
  const msg = new Uint8Array(8);
  new DataView(msg.buffer).setBigUint64(0, BigInt(counter));
  const d = await hmacSha256(key, msg);
  const off = d[d.length - 1] & 0x0f;
  const value = ((d[off] & 0x7f) << 24) | (d[off + 1] << 16) | (d[off + 2] << 8) | d[off + 3];
  return String(value % 100_000_000).padStart(8, "0");
}

// ------------------------------------------------------------------ the journal on the wire (§11)

/** A journal segment's key, HPKE-wrapped to this guardian (info has no zero byte: it predates §1). */
export async function openSegmentKey(wrappedB64, segmentUid, sealKey) {
  const wrapped = unb64(wrappedB64, "segment.keys.wrapped", { size: WRAP_BYTES });
  try {
    return await hpkeOpen(sealKey, utf8(`minormode/journal/segment-key/v1/${segmentUid}`), wrapped);
  } catch { throw new SealError("segment.keys", `segment ${segmentUid}: the key wrap does not open with this key`); }
}

/** One journal record: AES-256-GCM under its segment key, associated data uid || u64(seq). */
export async function openJournalRecord(segmentKey, segmentUid, seq, nonceB64, ciphertextB64) {
  const aad = new Uint8Array(segmentUid.length + 8);
  aad.set(utf8(segmentUid));
  new DataView(aad.buffer).setBigUint64(segmentUid.length, BigInt(seq));
  try {
    const pt = await aesGcmDecrypt(segmentKey, unb64(nonceB64, "record.nonce", { size: 12 }), unb64(ciphertextB64, "record.ciphertext"), aad);
    return loads(pt, `record ${seq}`, 1 << 20);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new SealError(`record ${seq}`, "does not open (tampered)");
  }
}
