// Payloads of PROTOCOL.md §5-§6 as the app reads and writes them (protocol/messages.py's
// readers, as strict): a device's ack, request, summary and catalogue; the guardian's own
// policies and decisions when it reopens them from the delivery history.
import { Fields, ProtocolError, b64 } from "./crypto.js";

const HOUR = 3600;
export const REPORT_KINDS = ["help", "harmful_content", "bullying", "other"];
export const DECISION_KINDS = ["grant_time", "deny_request", "purchase", "lock", "unlock", "leave_minor_mode",
  "enter_minor_mode", "set_guardian_code", "delete_data", "unpair"];

function read(payload, where, fn) {
  const f = new Fields(payload, where);
  const out = fn(f);
  f.done();
  return out;
}

export const readAck = (body, where = "ack.payload") => read(body.payload, where, (f) => ({
  message: f.hex("message"),
  type: f.choice("type", ["keyring", "policy", "decision", "consent", "ack", "request", "summary", "receipt", "catalogue", "paired"]),
  result: f.choice("result", ["applied", "refused", "duplicate"]),
  reason: f.text("reason", { maxLen: 500 }),
  applied_at: f.integer("applied_at", { optional: true }),
  policy_version: f.int("policy_version"),
}));

export const readRequest = (body, where = "request.payload") => read(body.payload, where, (f) => {
  const request_id = f.hex("request_id");
  const kind = f.choice("kind", ["more_time", "purchase", "report"]);
  if (kind === "more_time") return { request_id, kind, minutes: f.int("minutes", { low: 1, high: 240 }), note: f.text("note", { maxLen: 500 }) };
  if (kind === "purchase") {
    return { request_id, kind, app_id: f.text("app_id", { minLen: 1, maxLen: 255 }), item: f.text("item", { minLen: 1, maxLen: 200 }),
      amount: f.int("amount", { low: 1 }), currency: f.text("currency", { minLen: 3, maxLen: 3 }) };
  }
  return { request_id, kind, report_kind: f.choice("report_kind", REPORT_KINDS), note: f.text("note", { maxLen: 2000 }) };
});

export const readSummary = (body, where = "summary.payload") => read(body.payload, where, (f) => {
  const day = f.text("day", { minLen: 10, maxLen: 10 });
  const hourly = f.array("hourly", { maxItems: 24 });
  if (hourly.length !== 24 || hourly.some((x) => typeof x !== "number" || !Number.isInteger(x) || x < 0 || x > HOUR)) {
    throw new ProtocolError(f.at("hourly"), "24 integers of 0..3600 seconds");
  }
  const purchases = f.array("purchases", { maxItems: 1000 }).map((p, i) => read(p, `${f.at("purchases")}[${i}]`, (pf) => ({
    item: pf.text("item", { maxLen: 200 }), amount: pf.int("amount"),
    currency: pf.text("currency", { minLen: 3, maxLen: 3 }), status: pf.text("status", { minLen: 1, maxLen: 16 }),
  })));
  return {
    day, timezone: f.text("timezone", { minLen: 1, maxLen: 64 }), used_seconds: f.int("used_seconds", { high: 86400 + HOUR }),
    budget_seconds: f.integer("budget_seconds", { optional: true }), per_app: f.counts("per_app"), hourly: [...hourly],
    blocked_apps: f.counts("blocked_apps"), blocked_domains: f.counts("blocked_domains"), purchases,
    requests: f.int("requests"), tamper: f.counts("tamper"), policy_version: f.int("policy_version"),
  };
});

export const readCatalogue = (body, where = "catalogue.payload") => read(body.payload, where, (f) => ({
  apps: f.array("apps", { maxItems: 2000 }).map((a, i) => read(a, `${f.at("apps")}[${i}]`, (af) => {
    const categories = af.array("categories", { maxItems: 32 });
    if (categories.some((c) => typeof c !== "string" || c.length < 1 || c.length > 64)) {
      throw new ProtocolError(af.at("categories"), "category names are 1..64 characters");
    }
    return { id: af.text("id", { minLen: 1, maxLen: 255 }), name: af.text("name", { maxLen: 200 }), categories: [...categories] };
  })),
}));

/** A guardian's own decision, reopened: the kind and its fields (not re-validated deeply). */
export const readDecision = (body, where = "decision.payload") => {
  const f = new Fields(body.payload, where);
  const kind = f.choice("kind", DECISION_KINDS);
  if (kind === "set_guardian_code") {
    const out = { kind, secret: f.bytes("secret", { size: 32 }), unlock_minutes: f.int("unlock_minutes", { low: 5, high: 240 }) };
    f.done();
    return out;
  }
  return { kind, ...body.payload };
};

export const readPolicy = (body, where = "policy.payload") => read(body.payload, where, (f) => {
  const policy = f.obj("policy");
  if (policy.value.version !== body.seq) throw new ProtocolError(policy.at("version"), `must equal the body's seq ${body.seq}`);
  return policy.value;
});

// -- what the guardian sends --------------------------------------------------------------

export const decision = {
  grantTime: (minutes, requestId) => ({ kind: "grant_time", minutes, request_id: requestId ?? null }),
  deny: (requestId) => ({ kind: "deny_request", request_id: requestId }),
  purchase: (requestId, approve) => ({ kind: "purchase", request_id: requestId, approve }),
  setGuardianCode: (secret, unlockMinutes = 30) => ({ kind: "set_guardian_code", secret: b64(secret), unlock_minutes: unlockMinutes }),
  deleteData: (reason) => ({ kind: "delete_data", reason, scope: "all" }),
  unpair: (reason) => ({ kind: "unpair", reason }),
};
export const consentPayload = ({ notice, language, accepted, usageReports, pushNotifications }) => ({
  notice, language, accepted, optional: { usage_reports: usageReports, push_notifications: pushNotifications },
});
