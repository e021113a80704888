"""A day's summary for the guardian's charts (PROTOCOL.md §6.3), built from clear data only.

Pure: usage intervals (the state store's), the day's counts (`agent.sync.daily`), the
ledger's purchases of the day and the policy in force. The numbers match what the child
sees on the device (`used_seconds` is the budget's count, from the same core function).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from agent.core.calendar import day_span, zone
from agent.core.decide import budget_used_seconds
from agent.core.policy import Policy
from agent.core.usage import Interval, Usage, merge, seconds_within
from agent.sync.daily import top
from protocol.messages import Summary

MAX_NAMES = 200  # apps or domains per chart
HOUR = timedelta(hours=1)


def hourly(active: Iterable[Interval], start: datetime, end: datetime, tz_name: str) -> tuple[int, ...]:
    """Seconds of use in each local hour of the day (a 25-hour DST day folds its repeated
    hour into one bucket; a 23-hour day leaves one empty)."""
    tz = zone(tz_name)
    buckets = [0.0] * 24
    merged = merge(active)
    t = start
    while t < end:
        nxt = min(t + HOUR, end)
        buckets[t.astimezone(tz).hour] += seconds_within(merged, t, nxt)
        t = nxt
    return tuple(min(3600, int(b)) for b in buckets)


def build(day: date, policy: Policy, usage: Usage, counts: Mapping[str, Mapping[str, int]],
          purchases: Iterable[Mapping[str, object]]) -> Summary:
    start, end = day_span(day, zone(policy.timezone))
    used = budget_used_seconds(policy, usage, start, end)
    per_app = {app: int(seconds_within(merge(ivs), start, end)) for app, ivs in usage.apps.items()}
    minutes = policy.budget.minutes_on(day.weekday())
    return Summary(
        day=day.isoformat(), timezone=policy.timezone, used_seconds=used,
        budget_seconds=None if minutes is None else minutes * 60,
        per_app=top({a: s for a, s in per_app.items() if s > 0}, MAX_NAMES),
        hourly=hourly(usage.active, start, end, policy.timezone),
        blocked_apps=top(counts.get("blocked_app", {}), MAX_NAMES),
        blocked_domains=top(counts.get("blocked_domain", {}), MAX_NAMES),
        purchases=tuple({"item": str(p["item"])[:200], "amount": int(str(p["amount"])),
                         "currency": str(p["currency"]), "status": str(p["status"])} for p in purchases),
        requests=sum(counts.get("request", {}).values()),
        tamper=dict(counts.get("tamper", {})),
        policy_version=policy.version,
    )
