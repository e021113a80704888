// The dashboard's HTTP API (dashboard/API.md): JSON in and out, the CSRF token on every
// non-GET request, RFC 9457 problems turned into ApiError with the field at fault. Nothing
// here trusts what comes back: callers verify signatures and open sealed blobs themselves.
import { t } from "./i18n.js";

const BASE = "/api/v1";
let csrf = "";
export const setCsrf = (token) => { csrf = token || ""; };
export const getCsrf = () => csrf;

export class ApiError extends Error {
  constructor(status, problem) {
    const slug = (problem.type || "").split(":").pop();
    super(problemText(status, slug, problem));
    this.name = "ApiError";
    this.status = status;
    this.slug = slug;
    this.field = problem.field || null;
    this.problem = problem;
    this.retryAfter = problem.retry_after || null;
  }
}

function problemText(status, slug, p) {
  const known = t(`problem.${slug}`, { detail: p.detail || "", seconds: p.retry_after || "" });
  if (!known.startsWith("problem.")) return known;
  return t("problem.other", { status, detail: p.detail || p.title || "" });
}

export async function call(method, path, { body = undefined, query = null, signal = undefined } = {}) {
  const url = new URL(BASE + path, location.origin);
  if (query) for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined) url.searchParams.set(k, v);
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin", signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { type: "urn:minormode:problem:offline", detail: String(e.message || e) });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text.slice(0, 200) }; }
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, body, query) => call("POST", path, { body: body ?? {}, query });
export const put = (path, body) => call("PUT", path, { body });
export const del = (path, query) => call("DELETE", path, { query });

/** GET with ?wait= long-polling: `null` when the server answered 204 (nothing yet). */
export async function waitFor(path, seconds, { signal, until = Date.now() + 600_000 } = {}) {
  while (Date.now() < until) {
    const r = await call("GET", path, { query: { wait: seconds }, signal });
    if (r !== null) return r;
  }
  return null;
}

export const dev = (family, device) => `/families/${family}/devices/${device}`;
