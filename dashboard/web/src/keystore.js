// IndexedDB: the guardian's unwrapped private keys (CryptoKeys imported non-extractable,
// so script running later in this origin can use them but never read their bytes), the
// guardian-code secrets per device (HMAC CryptoKeys, also non-extractable), and the last
// keyring each family was verified to (readers only ever extend their own head, §4).
const DB = "minormode";
const STORES = ["identity", "codes", "keyrings"];
let opened = null;

function db() {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => { for (const s of STORES) if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s); };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}
async function run(store, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(store, mode);
    const req = fn(tx.objectStore(store));
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
const getItem = (store, key) => run(store, "readonly", (s) => s.get(key));
const putItem = (store, key, value) => run(store, "readwrite", (s) => s.put(value, key));
const delItem = (store, key) => run(store, "readwrite", (s) => s.delete(key));

/** The identity as stored: keys and public halves, never the decrypted PKCS#8 bundle. */
export function saveIdentity(identity, email) {
  const { kid, label, sign, seal } = identity;
  return putItem("identity", kid, { kid, label, email, sign, seal });
}
export async function loadIdentity(kid) {
  const r = await getItem("identity", kid);
  if (!r) return null;
  return { kid: r.kid, label: r.label, sign: r.sign, seal: r.seal, public: { id: r.kid, sign: r.sign.pub, seal: r.seal.pub, label: r.label } };
}
export const forgetIdentity = (kid) => delItem("identity", kid);

export const saveCode = (device, value) => putItem("codes", device, value);
export const loadCode = (device) => getItem("codes", device);
export const forgetCode = (device) => delItem("codes", device);

export const saveKeyring = (family, entries) => putItem("keyrings", family, entries);
export const loadKeyring = (family) => getItem("keyrings", family);

/** Log-out: nothing of this account stays in the browser. */
export async function clearAll() {
  for (const s of STORES) await run(s, "readwrite", (st) => st.clear());
}
