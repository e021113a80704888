"""`minormodectl check | explain | simulate`: a policy file read, judged and played, without
a running agent (the pure core only)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from agent.cli.errors import BadInputError, guarded
from agent.cli.human import minutes, money
from agent.cli.lists import DEFAULT_OUTPUT as LISTS_DIR
from agent.cli.output import add_json_flag, print_json
from agent.core.calendar import day_span, local_day, zone
from agent.core.decide import decide
from agent.core.decision import Decision
from agent.core.parse import load_policy_file, policy_to_mapping
from agent.core.policy import FilterProfile, Policy
from agent.core.simulate import simulate
from agent.core.usage import Interval, Usage
from agent.filter.match import ListStore, Matcher, missing_lists_text


def _load(path: str) -> Policy:
    return load_policy_file(Path(path))


def _instant(text: str, policy: Policy) -> datetime:
    """An ISO time; without an offset it is read in the policy's timezone."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadInputError(f"--at {text!r}: not an ISO time such as 2026-11-23T18:30") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(policy.timezone))
    return parsed.astimezone(UTC)


def _local(instant: datetime, policy: Policy) -> str:
    return instant.astimezone(zone(policy.timezone)).strftime("%a %Y-%m-%d %H:%M")


def _until_lock(left: int | None) -> str:
    return "no limit ahead" if left is None else f"{minutes(left)} until the lock"


def describe(decision: Decision, policy: Policy) -> list[str]:
    """A Decision in words, for people."""
    out = [f"at {_local(decision.at, policy)} ({policy.timezone}), policy version {decision.policy_version}"]
    if decision.locked:
        until = f" until {_local(decision.unlock_at, policy)}" if decision.unlock_at else ""
        out.append("LOCKED: " + ", ".join(r.value for r in decision.reasons) + until)
    else:
        left = decision.remaining_seconds
        out.append(f"unlocked; {_until_lock(left)}")
    budget = "no daily limit" if decision.budget_seconds is None else minutes(decision.budget_seconds)
    out.append(f"used today: {minutes(decision.used_seconds)} of {budget}")
    if decision.next_change:
        change = decision.next_change
        why = f" ({change.reason.value})" if change.reason else ""
        out.append(f"next change: {change.kind.value}{why} at {_local(change.at, policy)}")
    if decision.warning_due:
        out.append(f"warning due: {decision.warning_due} min before the lock")
    if decision.rest_reminder_due:
        out.append(f"rest reminder due: {minutes(decision.continuous_seconds)} of continuous use")
    apps = decision.apps
    out.append(
        "apps: " + ("only always-allowed apps" if apps.device_locked else
                    "education and always-allowed apps only" if apps.education_only else
                    "per the allowlist") + ("" if apps.games_open else "; games closed")
    )
    f = decision.filter
    out.append(
        f"filter: block {', '.join(sorted(f.block_categories)) or 'nothing'}"
        f"{'; allowlist only' if f.allowlist_only else ''}"
        f"{'; SafeSearch' if f.safesearch else ''}; YouTube {f.youtube.value}"
    )
    out.extend(egress_lines(f))
    s = decision.spending
    out.append(
        "spending: no paid services" if not s.paid_allowed else
        f"spending: {money(s.per_transaction, s.currency)} a purchase, {money(s.per_day, s.currency)} a day, "
        f"{money(s.per_month, s.currency)} a month; the guardian is asked above "
        f"{money(s.ask_above, s.currency)}"
    )
    return out


def egress_lines(f: FilterProfile) -> list[str]:
    """The child's closed egress and its exceptions (each one a policy key)."""
    return [
        "network: the child reaches only addresses the filter resolved for it recently "
        "(any port); IP literals, other resolvers, DoT/DoQ and VPN ports are refused",
        "network exceptions: fixed networks (filter.egress_allow): "
        + (", ".join(sorted(f.egress_allow)) or "none"),
        "network exceptions: guardian's allowed domains (filter.allow), reached once resolved: "
        + (", ".join(sorted(f.allow_domains)) or "none"),
    ]


def decision_fields(decision: Decision) -> dict[str, object]:
    """What `describe` says, as values (explain --json)."""
    change = decision.next_change
    apps, f, s = decision.apps, decision.filter, decision.spending
    return {
        "at": decision.at, "timezone": decision.timezone, "policy_version": decision.policy_version,
        "locked": decision.locked, "reasons": list(decision.reasons), "unlock_at": decision.unlock_at,
        "remaining_seconds": decision.remaining_seconds, "used_seconds": decision.used_seconds,
        "budget_seconds": decision.budget_seconds,
        "next_change": None if change is None else {"kind": change.kind, "reason": change.reason,
                                                    "at": change.at},
        "warning_due": decision.warning_due, "rest_reminder_due": decision.rest_reminder_due,
        "continuous_seconds": decision.continuous_seconds,
        "apps": {"device_locked": apps.device_locked, "education_only": apps.education_only,
                 "games_open": apps.games_open},
        "filter": {"block_categories": f.block_categories, "allowlist_only": f.allowlist_only,
                   "safesearch": f.safesearch, "youtube": f.youtube,
                   "egress_allow": sorted(f.egress_allow), "allow": sorted(f.allow_domains)},
        "spending": {"paid_allowed": s.paid_allowed, "currency": s.currency,
                     "per_transaction": s.per_transaction, "per_day": s.per_day,
                     "per_month": s.per_month, "ask_above": s.ask_above},
    }


def cmd_check(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if args.json:
        print_json({"file": args.file, "valid": True, "version": policy.version,
                    "age_band": policy.age_band, "timezone": policy.timezone})
        return 0
    print(f"{args.file}: valid; version {policy.version}, age band {policy.age_band.value}, "
          f"timezone {policy.timezone}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    at = _instant(args.at, policy)
    if args.used < 0 or args.used > 1440:
        raise BadInputError(f"--used {args.used}: minutes used today must be between 0 and 1440")
    tz = zone(policy.timezone)
    start, _ = day_span(local_day(at, tz), tz)
    used = timedelta(minutes=args.used)
    if start + used > at:
        raise BadInputError(f"--used {args.used}: more minutes than have passed today by --at")
    usage = Usage(active=(Interval(start, start + used),)) if args.used else Usage()
    decision = decide(policy, at, usage)
    settings = _settings(policy) if args.settings else None
    missing = Matcher(decision.filter, policy.version, ListStore(args.lists)).missing
    if missing:  # loud: a category the policy blocks blocks nothing on this device
        print(f"error: {missing_lists_text(missing)} (in {args.lists}): those names are NOT "
              "blocked", file=sys.stderr)
    if args.json:
        out = decision_fields(decision)
        filter_fields = out["filter"]
        assert isinstance(filter_fields, dict)
        filter_fields["missing_lists"] = list(missing)
        if settings is not None:
            out["settings"] = [{"key": k, "value": v, "source": src} for k, v, src in settings]
        print_json(out)
        return 0
    for line in describe(decision, policy):
        print(line)
    if missing:
        print(f"filter NOT in force: {missing_lists_text(missing)}")
    if settings is not None:
        print("settings (value, and whether the guardian set it or it is the age band's default):")
        for key, value, source in settings:
            print(f"  {key} = {_toml(value)}   [{source}]")
    return 0


def _settings(policy: Policy) -> list[tuple[str, object, str]]:
    """Every setting, its value, and whether the guardian set it, it was waived, or it is the
    band default (`Policy.sources`, keyed as `policy_to_mapping` writes them)."""
    def source(key: str) -> str:
        top = policy.sources.get(key.split(".", maxsplit=1)[0])
        return "waived" if top == "waived" else policy.sources.get(key, top or "band default")

    return [(key, value, source(key)) for key, value in _flatten(policy_to_mapping(policy)).items()]


def _toml(value: object) -> str:
    """A setting as a guardian writes it in the policy file, not as a Python repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    return str(value)


def _flatten(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("limits", "categories", "hours", "schedule"):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    tz = zone(policy.timezone)
    try:
        day = date.fromisoformat(args.day) if args.day else date(2026, 11, 23)
        use_from, use_to = time.fromisoformat(args.use_from), time.fromisoformat(args.use_to)
    except ValueError as exc:
        raise BadInputError(f"simulate --day {args.day!r} --from {args.use_from!r} --to {args.use_to!r}: "
                            f"{exc} (a day is YYYY-MM-DD, a time HH:MM)") from exc
    if use_from >= use_to:
        raise BadInputError(f"simulate --from {args.use_from} --to {args.use_to}: the child must start "
                            "trying before it stops (--from earlier than --to, the same day)")
    start, end = day_span(day, tz)

    def wants(t: datetime) -> bool:
        local = t.astimezone(tz).time()
        return use_from <= local < use_to

    entries, usage = simulate(policy, start, end, wants)
    total = sum(iv.seconds for iv in usage.active)
    if args.json:
        print_json({
            "day": day, "timezone": policy.timezone, "use_from": use_from, "use_to": use_to,
            "entries": [{"at": e.at, "what": e.what, "reasons": list(e.decision.reasons),
                         "unlock_at": e.decision.unlock_at,
                         "remaining_seconds": e.decision.remaining_seconds,
                         "warning_due": e.decision.warning_due,
                         "continuous_seconds": e.decision.continuous_seconds} for e in entries],
            "total_minutes": int(total // 60),
        })
        return 0
    print(f"{day.isoformat()} in {policy.timezone}: the child tries to use the device "
          f"from {use_from:%H:%M} to {use_to:%H:%M}")
    for e in entries:
        d = e.decision
        local = e.at.astimezone(tz).strftime("%H:%M:%S")
        if e.what == "locked":
            until = f" until {_local(d.unlock_at, policy)}" if d.unlock_at else ""
            print(f"{local}  locked ({', '.join(r.value for r in d.reasons)}){until}")
        elif e.what == "unlocked":
            print(f"{local}  unlocked, {_until_lock(d.remaining_seconds)}")
        elif e.what == "warning":
            print(f"{local}  warning: {d.warning_due} min left")
        else:
            print(f"{local}  rest reminder after {minutes(d.continuous_seconds)} of use")
    print(f"total use: {int(total // 60)} min")
    return 0




def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="validate a policy file (exit 2 with every problem)")
    p.add_argument("file")
    add_json_flag(p)
    p.set_defaults(func=guarded(cmd_check))
    p = sub.add_parser("explain", help="what a policy allows at a time, and why")
    p.add_argument("file")
    p.add_argument("--at", required=True, help="ISO time; without an offset, in the policy's timezone")
    p.add_argument("--used", type=int, default=0, help="minutes of the daily budget already used")
    p.add_argument("--settings", action="store_true", help="also list every setting and its source")
    p.add_argument("--lists", type=Path, default=LISTS_DIR,
                   help=f"the compiled lists to check the blocked categories against (default {LISTS_DIR})")
    add_json_flag(p)
    p.set_defaults(func=guarded(cmd_explain))
    p = sub.add_parser("simulate", help="play a day of use and print the timeline of decisions")
    p.add_argument("file")
    p.add_argument("--day", help="local date YYYY-MM-DD (default 2026-11-23, a Monday)")
    p.add_argument("--from", dest="use_from", default="07:00", help="the child starts trying at HH:MM")
    p.add_argument("--to", dest="use_to", default="23:59", help="and stops trying at HH:MM")
    add_json_flag(p)
    p.set_defaults(func=guarded(cmd_simulate))
