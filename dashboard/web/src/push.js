// Live updates while the app is open (the guardian push socket, API.md "Push"), and Web Push
// for when it is closed (a service worker and the server's VAPID key). Both are wake-up
// hints only: the screen re-reads what changed and verifies it, so a lost or forged event
// costs a refresh, never a wrong display.
import * as api from "./api.js";
import { emit } from "./state.js";

let socket = null;
let after = 0;
let retry = 0;
let stopped = true;
let timer = null;

/**
 * Open the socket (once; a second call while one is open does nothing). Each socket's
 * handlers act only while it is the current one: after `disconnect(); connect()` (a new
 * family after pairing) the old socket's close arrives later, and must neither forget the
 * new socket nor schedule a reconnect of its own (two live sockets, a growing back-off).
 */
export function connect() {
  stopped = false;
  clearTimeout(timer);
  timer = null;
  if (socket) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/push`);
  socket = ws;
  const current = () => socket === ws;
  ws.onopen = () => { if (current()) ws.send(JSON.stringify({ csrf: api.getCsrf(), after })); };
  ws.onmessage = (m) => {
    if (!current()) return;
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === "hello") { retry = 0; emit({ kind: "connected" }); }
    if (msg.type === "event" && msg.event && Number.isInteger(msg.event.id)) {
      after = Math.max(after, msg.event.id);
      emit(msg.event);
    }
  };
  ws.onclose = () => {
    if (!current()) return; // replaced (disconnect, then connect): the new socket carries on
    socket = null;
    if (stopped) return;
    // back-off with jitter: 1, 2, 4 ... 30 s
    const wait = Math.min(30_000, 1000 * 2 ** retry++) * (0.5 + Math.random() / 2);
    timer = setTimeout(connect, wait);
    emit({ kind: "disconnected" });
  };
}

export function disconnect() {
  stopped = true;
  clearTimeout(timer);
  timer = null;
  const ws = socket;
  socket = null; // before close(): its late onclose sees it is no longer current
  if (ws) ws.close();
}

/** What the socket is doing (for the self-test page and the tests): open or not, the back-off. */
export const pushState = () => ({ socket: socket ? socket.readyState : null, retry, reconnecting: timer !== null, after });

// -- Web Push --------------------------------------------------------------------------------

export async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return null;
  return navigator.serviceWorker.register("/sw.js", { scope: "/" });
}

const b64ToBytes = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (ch) => ch.charCodeAt(0));
const bytesToB64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export const webPushSupported = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

export async function webPushState() {
  if (!webPushSupported()) return "unsupported";
  const reg = await navigator.serviceWorker.getRegistration("/");
  const sub = reg && (await reg.pushManager.getSubscription());
  if (sub) return "on";
  return Notification.permission === "denied" ? "blocked" : "off";
}

/** Ask for notifications and subscribe with the server's VAPID key (throws if refused). */
export async function enableWebPush() {
  const reg = (await navigator.serviceWorker.getRegistration("/")) || (await registerServiceWorker());
  await navigator.serviceWorker.ready;
  if ((await Notification.requestPermission()) !== "granted") throw new Error("permission");
  const { public_key: key } = await api.get("/webpush/key");
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(key) });
  const json = sub.toJSON();
  await api.post("/webpush/subscriptions", { endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh || bytesToB64(sub.getKey("p256dh")), auth: json.keys.auth || bytesToB64(sub.getKey("auth")) } });
}

export async function disableWebPush() {
  const reg = await navigator.serviceWorker.getRegistration("/");
  const sub = reg && (await reg.pushManager.getSubscription());
  if (!sub) return;
  await api.post("/webpush/subscriptions/delete", { endpoint: sub.endpoint });
  await sub.unsubscribe();
}
