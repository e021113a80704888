"""Policy files (TOML, or the same structure as JSON) to `Policy`, strictly.

The guardian's file is merged key by key over the age band's defaults, then every value is
checked. Every problem found is reported at once, each naming the key, the value and (for
TOML) the line, so a guardian or manufacturer can fix a file in one pass. Nothing here reads
the clock or touches the OS except reading the file it is given and the tz database.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.core.bands import band_defaults
from agent.core.policy import (
    LOCK_GRACE_DEFAULT,
    LOCK_GRACE_RANGE,
    MINUTES_PER_DAY,
    AgeBand,
    AppDefault,
    AppRules,
    Budget,
    ClockRange,
    Curfew,
    DefaultKey,
    Enforcement,
    FilterProfile,
    GamesRule,
    Policy,
    RestRule,
    Schedule,
    SchoolHours,
    SchoolMode,
    SpendingCaps,
    TimeUpMode,
    Weekday,
    WeeklyRanges,
    YouTubeMode,
)
from agent.core.usb import SERIAL_RE, DeviceMatch, UsbClass, UsbRules, valid_hex4

Path_ = tuple[str, ...]
_E = TypeVar("_E", DefaultKey, AppDefault)
LANGUAGES = ("zh-CN", "en")
FILTER_CATEGORIES = (
    "adult", "gambling", "violence", "drugs", "self-harm", "proxies-vpn-doh",
    "games", "social", "video",
)
DAY_KEYS = {d.key: (d,) for d in Weekday} | {
    "every_day": tuple(Weekday),
    "weekdays": tuple(Weekday)[:5],
    "weekend": (Weekday.SAT, Weekday.SUN),
}
_DAY_KEY_ORDER = ("every_day", "weekdays", "weekend", *(d.key for d in Weekday))
_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_APP_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9\-_]{0,61}[a-z0-9_])?\.)*[a-z0-9\-_]{1,63}$")


@dataclass(frozen=True)
class Problem:
    key: str
    value: object
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        shown = "" if self.value is _MISSING else f" = {_show(self.value)}"
        return f"{where}: {self.key or '(top level)'}{shown}: {self.message}"


class PolicyError(ValueError):
    """A policy that cannot be used; `problems` lists every reason, `str()` renders them."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
MISSING: Any = _MISSING  # a Problem about a file, not a value (the settings files use it too)


def _show(value: object) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def dotted(path: Path_) -> str:
    return ".".join(f'"{p}"' if "." in p or " " in p else p for p in path)


# --------------------------------------------------------------------------- entry points


def load_policy_file(path: Path) -> Policy:
    """Parse a `.toml` or `.json` policy file; raise PolicyError naming every problem."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(source, [Problem("", _MISSING, f"cannot read: {exc.strerror}")]) from exc
    return parse_policy_text(raw, source, is_json=path.suffix.lower() == ".json")


def parse_policy_text(raw: bytes, source: str, *, is_json: bool = False) -> Policy:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [Problem("", _MISSING, f"not UTF-8 ({exc.reason})")]) from exc
    if is_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(source, [Problem("", _MISSING, f"not JSON: {exc.msg}", exc.lineno)]) from exc
        if not isinstance(data, dict):
            raise PolicyError(source, [Problem("", data, "a policy is a JSON object")])
        return policy_from_mapping(data, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise PolicyError(
            source, [Problem("", _MISSING, f"not TOML: {exc}", int(m[1]) if m else None)]
        ) from exc
    return policy_from_mapping(data, source, toml_key_lines(text))


def default_policy(band: AgeBand, timezone: str = "Asia/Shanghai", version: int = 1) -> Policy:
    """The age band's defaults with nothing changed by a guardian."""
    return policy_from_mapping(
        {"version": version, "age_band": band.value, "timezone": timezone}, "<defaults>"
    )


def policy_from_mapping(
    data: Mapping[str, Any], source: str = "<policy>", lines: Mapping[Path_, int] | None = None
) -> Policy:
    ctx = _Ctx(lines or {})
    band = _band(ctx, data)
    defaults = band_defaults(band or AgeBand.AGE_8_12)
    merged = _merge(defaults, data)
    policy = _build(ctx, merged, band, _sources(defaults, data))
    if ctx.problems or policy is None:
        raise PolicyError(source, ctx.problems)
    return policy


def filter_profile_from_mapping(data: Any, source: str = "<filter>") -> FilterProfile:
    """A policy's `filter` table on its own (the standalone DNS filter's profile file):
    the same keys, checks and defaults as in a policy; PolicyError naming every problem."""
    ctx = _Ctx({})
    profile = _filter(ctx, _table(ctx, ("filter",), data))
    if ctx.problems or profile is None:
        raise PolicyError(source, ctx.problems)
    return profile


def policy_to_mapping(policy: Policy) -> dict[str, Any]:
    """The effective policy as plain data in the file's structure (for `explain` and JSON)."""
    def ranges(rs: tuple[ClockRange, ...]) -> list[str]:
        return [str(r) for r in rs]

    def weekly(w: WeeklyRanges) -> dict[str, list[str]]:
        return {d.key: ranges(w[d]) for d in Weekday}

    a, s, f = policy.apps, policy.spending, policy.filter
    return {
        "version": policy.version,
        "age_band": policy.age_band.value,
        "timezone": policy.timezone,
        "retention_days": policy.retention_days,
        "waive": sorted(k.value for k in policy.waived),
        "budget": {d.key: policy.budget.daily_minutes[d] for d in Weekday},
        "schedule": {
            d.key: ranges(w) for d in Weekday if (w := policy.schedule.windows[d]) is not None
        },
        "curfew": {"enabled": policy.curfew.enabled, **weekly(policy.curfew.ranges)},
        "school": {
            "enabled": policy.school.enabled,
            "mode": policy.school.mode.value,
            "hours": weekly(policy.school.ranges),
            "holidays": sorted(d.isoformat() for d in policy.school.holidays),
        },
        "games": {
            "enabled": policy.games.enabled,
            "hours": weekly(policy.games.ranges),
            "holiday_hours": ranges(policy.games.holiday_ranges),
            "holidays": sorted(d.isoformat() for d in policy.games.holidays),
            "categories": sorted(policy.games.categories),
        },
        "rest": {
            "enabled": policy.rest.enabled,
            "after_minutes": policy.rest.after_minutes,
            "break_minutes": policy.rest.break_minutes,
            "enforce": policy.rest.enforce,
        },
        "apps": {
            "default": a.default.value,
            "allowed": sorted(a.allowed),
            "allowed_categories": sorted(a.allowed_categories),
            "blocked": sorted(a.blocked),
            "blocked_categories": sorted(a.blocked_categories),
            "always_allowed": sorted(a.always_allowed),
            "always_allowed_categories": sorted(a.always_allowed_categories),
            "education_categories": sorted(a.education_categories),
            "emergency": sorted(a.emergency),
            "emergency_categories": sorted(a.emergency_categories),
            "limits": dict(sorted(a.limits_minutes.items())),
            "categories": {k: sorted(v) for k, v in sorted(a.categories.items())},
            "payers": sorted(a.payers),
        },
        "spending": {
            "currency": s.currency,
            "per_transaction": s.per_transaction,
            "per_day": s.per_day,
            "per_month": s.per_month,
            "ask_above": s.ask_above,
        },
        "filter": {
            "block_categories": sorted(f.block_categories),
            "allowlist_only": f.allowlist_only,
            "allowlist_only_during": sorted(f.allowlist_only_during),
            "safesearch": f.safesearch,
            "youtube": f.youtube.value,
            "allow": sorted(f.allow_domains),
            "block": sorted(f.block_domains),
            "egress_allow": sorted(f.egress_allow),
        },
        "enforcement": {
            "warn_minutes": list(policy.enforcement.warn_minutes),
            "lock_grace_seconds": policy.enforcement.lock_grace_seconds,
            "time_up": policy.enforcement.time_up.value,
            "language": policy.enforcement.language,
        },
        "usb": {
            "allow_classes": sorted(c.value for c in policy.usb.allow_classes),
            "allow_devices": [str(m) for m in policy.usb.allow_devices],
        },
    }


# --------------------------------------------------------------------------- TOML lines

_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_PART = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)"""
_KEY_RE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_PART_RE = re.compile(r"""\s*("([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+))\s*(\.|$)""")


def _split_key(key: str) -> Path_:
    parts: list[str] = []
    pos = 0
    while pos < len(key):
        m = _PART_RE.match(key, pos)
        if not m:
            break
        parts.append(m[2] if m[2] is not None else m[3] if m[3] is not None else m[4])
        pos = m.end()
    return tuple(parts)


def toml_key_lines(text: str) -> dict[Path_, int]:
    """Map each key path in a TOML document to the line (1-based) that defines it.

    A line scanner, not a parser: tomllib has already accepted the text, so only table
    headers and `key =` lines at the start of a line need recognising. Keys inside inline
    tables and multi-line arrays are located at their enclosing key's line.
    """
    lines: dict[Path_, int] = {}
    table: Path_ = ()
    depth = 0  # open brackets of a multi-line value
    for number, line in enumerate(text.splitlines(), start=1):
        if depth == 0:
            header = _HEADER_RE.match(line)
            if header:
                table = _split_key(header[1])
                lines.setdefault(table, number)
                continue
            key = _KEY_RE.match(line)
            if key:
                lines.setdefault(table + _split_key(key[1]), number)
        depth = max(0, depth + _bracket_balance(line))
    return lines


def _bracket_balance(line: str) -> int:
    balance, quote = 0, ""
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance


# --------------------------------------------------------------------------- validation


class _Ctx:
    def __init__(self, lines: Mapping[Path_, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def fail(self, path: Path_, value: object, message: str) -> None:
        line = None
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                break
        self.problems.append(Problem(dotted(path), value, message, line))


def _merge(defaults: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Guardian values over defaults, table by table. Tables of open-ended keys (per-app
    limits, category overrides, day maps) are replaced whole when the guardian gives them."""
    out = dict(defaults)
    for key, value in data.items():
        base = out.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and key not in _OPEN_TABLES:
            out[key] = _merge(base, value)
        else:
            out[key] = value
    return out


_OPEN_TABLES = frozenset({"limits", "categories", "hours", "schedule"})


def _sources(defaults: Mapping[str, Any], data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in defaults.items():
        name = prefix + key
        if isinstance(value, dict) and key not in _OPEN_TABLES:
            sub = data.get(key)
            out |= _sources(value, sub if isinstance(sub, dict) else {}, name + ".")
        else:
            out[name] = "guardian" if key in data else "band default"
    for key in data:
        out.setdefault(prefix + key, "guardian")  # set by the guardian, no band default (version, waive)
    if prefix:  # a weekly table: its day keys name the days they set, as policy_to_mapping lists them
        for key, days in (DAY_KEYS | {"daily_minutes": tuple(Weekday)}).items():
            if prefix + key in out:
                for day in days:
                    if out.get(prefix + day.key) != "guardian":  # any key the guardian wrote wins
                        out[prefix + day.key] = out[prefix + key]
    return out


_TOP_KEYS = {
    "version", "age_band", "timezone", "retention_days", "waive", "budget", "schedule",
    "curfew", "school", "games", "rest", "apps", "spending", "filter", "enforcement", "usb",
}


def _band(ctx: _Ctx, data: Mapping[str, Any]) -> AgeBand | None:
    raw = data.get("age_band", _MISSING)
    if raw is _MISSING:
        ctx.fail(("age_band",), _MISSING, f"required; one of {', '.join(b.value for b in AgeBand)}")
        return None
    try:
        return AgeBand(raw)
    except (ValueError, TypeError):
        ctx.fail(("age_band",), raw, f"unknown age band; one of {', '.join(b.value for b in AgeBand)}")
        return None


def _build(ctx: _Ctx, d: dict[str, Any], band: AgeBand | None, sources: dict[str, str]) -> Policy | None:
    _keys(ctx, (), d, _TOP_KEYS)
    version = _int(ctx, ("version",), d.get("version", _MISSING), 1, 2**53)
    timezone = _timezone(ctx, d.get("timezone", _MISSING))
    retention = _int(ctx, ("retention_days",), d["retention_days"], 1, 3650)
    waived = frozenset(_enum_list(ctx, ("waive",), d.get("waive", []), DefaultKey))
    budget = _budget(ctx, _table(ctx, ("budget",), d["budget"]))
    schedule = _schedule(ctx, _table(ctx, ("schedule",), d["schedule"]))
    curfew = _curfew(ctx, _table(ctx, ("curfew",), d["curfew"]))
    school = _school(ctx, _table(ctx, ("school",), d["school"]))
    games = _games(ctx, _table(ctx, ("games",), d["games"]))
    rest = _rest(ctx, _table(ctx, ("rest",), d["rest"]))
    apps = _apps(ctx, _table(ctx, ("apps",), d["apps"]))
    spending = _spending(ctx, _table(ctx, ("spending",), d["spending"]))
    filt = _filter(ctx, _table(ctx, ("filter",), d["filter"]))
    enforcement = _enforcement(ctx, _table(ctx, ("enforcement",), d["enforcement"]))
    usb = _usb(ctx, _table(ctx, ("usb",), d.get("usb", {})))
    if ctx.problems or band is None:
        return None
    assert version is not None and timezone is not None and retention is not None
    assert budget and schedule and curfew and school and games and rest and apps
    assert spending and filt and enforcement
    for key in waived:
        sources[key.value] = "waived"
    return Policy(
        version=version, age_band=band, timezone=timezone, retention_days=retention,
        budget=budget, schedule=schedule, curfew=curfew, school=school, games=games, rest=rest,
        apps=apps, spending=spending, filter=filt, enforcement=enforcement, waived=waived,
        sources=sources, usb=usb or UsbRules(),
    )


def _keys(ctx: _Ctx, path: Path_, table: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    for key in table:
        if key not in allowed:
            near = ", ".join(sorted(allowed))
            ctx.fail((*path, key), table[key], f"unknown key; expected one of: {near}")


def _table(ctx: _Ctx, path: Path_, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        ctx.fail(path, value, "must be a table")
        return None
    return value


def _int(ctx: _Ctx, path: Path_, value: Any, lo: int, hi: int) -> int | None:
    if value is _MISSING:
        ctx.fail(path, value, "required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(path, value, "must be a whole number")
        return None
    if not lo <= value <= hi:
        ctx.fail(path, value, f"must be between {lo} and {hi}")
        return None
    return value


def _bool(ctx: _Ctx, path: Path_, value: Any) -> bool | None:
    if not isinstance(value, bool):
        ctx.fail(path, value, "must be true or false")
        return None
    return value


def _str_list(ctx: _Ctx, path: Path_, value: Any, pattern: re.Pattern[str] | None = None,
              what: str = "string") -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        ctx.fail(path, value, f"must be a list of {what}s")
        return []
    if pattern is not None:
        for v in value:
            if not pattern.match(v):
                ctx.fail(path, v, f"not a valid {what}")
    return list(value)


def _enum_list(ctx: _Ctx, path: Path_, value: Any, enum: type[_E]) -> list[_E]:
    out: list[_E] = []
    for v in _str_list(ctx, path, value):
        try:
            out.append(enum(v))
        except ValueError:
            ctx.fail(path, v, f"unknown; one of {', '.join(e.value for e in enum)}")
    return out


def _choice(ctx: _Ctx, path: Path_, value: Any, choices: tuple[str, ...]) -> str | None:
    if value not in choices:
        ctx.fail(path, value, f"must be one of: {', '.join(choices)}")
        return None
    return str(value)


def _timezone(ctx: _Ctx, value: Any) -> str | None:
    path = ("timezone",)
    if value is _MISSING:
        ctx.fail(path, value, "required: the guardian's IANA timezone, e.g. \"Asia/Shanghai\"")
        return None
    if not isinstance(value, str) or not value or value.startswith(("/", ".")) or ".." in value:
        ctx.fail(path, value, "must be an IANA timezone name such as \"Asia/Shanghai\"")
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        ctx.fail(path, value, "unknown timezone (not in the IANA tz database)")
        return None
    return value


def _range(ctx: _Ctx, path: Path_, value: Any) -> ClockRange | None:
    m = _RANGE_RE.match(value) if isinstance(value, str) else None
    if not m:
        ctx.fail(path, value, 'a time range is "HH:MM-HH:MM" (24-hour clock)')
        return None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        ctx.fail(path, value, "not a time of day (00:00 to 24:00)")
        return None
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % MINUTES_PER_DAY and not (start == 0 and end == MINUTES_PER_DAY):
        ctx.fail(path, value, "zero length: start and end are the same time")
        return None
    return ClockRange(start, end)


def _ranges(ctx: _Ctx, path: Path_, value: Any) -> tuple[ClockRange, ...] | None:
    if not isinstance(value, list):
        ctx.fail(path, value, 'must be a list of "HH:MM-HH:MM" ranges')
        return None
    out = [_range(ctx, path, v) for v in value]
    return tuple(sorted(r for r in out if r is not None))


def _days(ctx: _Ctx, path: Path_, table: Mapping[str, Any], extra: frozenset[str] = frozenset()
          ) -> list[tuple[ClockRange, ...] | None]:
    """Day keys (every_day < weekdays/weekend < mon..sun, the more specific wins) to 7 slots."""
    _keys(ctx, path, table, set(DAY_KEYS) | extra)
    days: list[tuple[ClockRange, ...] | None] = [None] * 7
    for key in _DAY_KEY_ORDER:
        if key in table:
            ranges = _ranges(ctx, (*path, key), table[key])
            for day in DAY_KEYS[key]:
                days[day] = ranges
    return days


def _weekly(ctx: _Ctx, path: Path_, table: Mapping[str, Any], extra: frozenset[str] = frozenset()
            ) -> WeeklyRanges:
    return tuple(r or () for r in _days(ctx, path, table, extra))


def _dates(ctx: _Ctx, path: Path_, value: Any) -> frozenset[date]:
    out: set[date] = set()
    for v in _str_list(ctx, path, value, what="date"):
        try:
            out.add(date.fromisoformat(v))
        except ValueError:
            ctx.fail(path, v, 'a date is "YYYY-MM-DD"')
    return frozenset(out)


def _budget(ctx: _Ctx, t: dict[str, Any] | None) -> Budget | None:
    if t is None:
        return None
    _keys(ctx, ("budget",), t, {"daily_minutes", *DAY_KEYS})
    daily = _int(ctx, ("budget", "daily_minutes"), t.get("daily_minutes", _MISSING), 0, MINUTES_PER_DAY)
    per_day: list[int | None] = [daily] * 7
    for key in _DAY_KEY_ORDER:
        if key in t:
            minutes = _int(ctx, ("budget", key), t[key], 0, MINUTES_PER_DAY)
            for day in DAY_KEYS[key]:
                per_day[day] = minutes
    return Budget(tuple(per_day))


def _schedule(ctx: _Ctx, t: dict[str, Any] | None) -> Schedule | None:
    return None if t is None else Schedule(tuple(_days(ctx, ("schedule",), t)))


def _curfew(ctx: _Ctx, t: dict[str, Any] | None) -> Curfew | None:
    if t is None:
        return None
    enabled = _bool(ctx, ("curfew", "enabled"), t.get("enabled", True))
    ranges = _weekly(ctx, ("curfew",), t, frozenset({"enabled"}))
    return Curfew(bool(enabled), ranges)


def _school(ctx: _Ctx, t: dict[str, Any] | None) -> SchoolHours | None:
    if t is None:
        return None
    p = ("school",)
    _keys(ctx, p, t, {"enabled", "mode", "hours", "holidays"})
    enabled = _bool(ctx, (*p, "enabled"), t.get("enabled", False))
    mode = _choice(ctx, (*p, "mode"), t.get("mode", "education_only"), tuple(m.value for m in SchoolMode))
    hours = _table(ctx, (*p, "hours"), t.get("hours", {}))
    ranges = _weekly(ctx, (*p, "hours"), hours or {})
    holidays = _dates(ctx, (*p, "holidays"), t.get("holidays", []))
    return SchoolHours(bool(enabled), ranges, SchoolMode(mode or "lock"), holidays)


def _games(ctx: _Ctx, t: dict[str, Any] | None) -> GamesRule | None:
    if t is None:
        return None
    p = ("games",)
    _keys(ctx, p, t, {"enabled", "hours", "holiday_hours", "holidays", "categories"})
    enabled = _bool(ctx, (*p, "enabled"), t.get("enabled", True))
    hours = _table(ctx, (*p, "hours"), t.get("hours", {}))
    ranges = _weekly(ctx, (*p, "hours"), hours or {})
    holiday_ranges = _ranges(ctx, (*p, "holiday_hours"), t.get("holiday_hours", [])) or ()
    holidays = _dates(ctx, (*p, "holidays"), t.get("holidays", []))
    cats = frozenset(_str_list(ctx, (*p, "categories"), t.get("categories", ["Game"])))
    return GamesRule(bool(enabled), ranges, holidays, holiday_ranges, cats)


def _rest(ctx: _Ctx, t: dict[str, Any] | None) -> RestRule | None:
    if t is None:
        return None
    p = ("rest",)
    _keys(ctx, p, t, {"enabled", "after_minutes", "break_minutes", "enforce"})
    enabled = _bool(ctx, (*p, "enabled"), t.get("enabled", True))
    after = _int(ctx, (*p, "after_minutes"), t.get("after_minutes", _MISSING), 5, 600)
    brk = _int(ctx, (*p, "break_minutes"), t.get("break_minutes", _MISSING), 1, 240)
    enforce = _bool(ctx, (*p, "enforce"), t.get("enforce", False))
    return RestRule(bool(enabled), after or 30, brk or 10, bool(enforce))


def _apps(ctx: _Ctx, t: dict[str, Any] | None) -> AppRules | None:
    if t is None:
        return None
    p = ("apps",)
    _keys(ctx, p, t, {
        "default", "allowed", "allowed_categories", "blocked", "blocked_categories",
        "always_allowed", "always_allowed_categories", "education_categories", "limits",
        "categories", "payers", "emergency", "emergency_categories",
    })

    def ids(key: str) -> frozenset[str]:
        return frozenset(_str_list(ctx, (*p, key), t.get(key, []), _APP_ID_RE, "app ID"))

    def cats(key: str) -> frozenset[str]:
        return frozenset(_str_list(ctx, (*p, key), t.get(key, []), what="category"))

    default = _choice(ctx, (*p, "default"), t.get("default", "deny"), tuple(d.value for d in AppDefault))
    limits: dict[str, int] = {}
    for app, minutes in (_table(ctx, (*p, "limits"), t.get("limits", {})) or {}).items():
        if not _APP_ID_RE.match(app):
            ctx.fail((*p, "limits", app), minutes, "not a valid app ID")
        value = _int(ctx, (*p, "limits", app), minutes, 0, MINUTES_PER_DAY)
        if value is not None:
            limits[app] = value
    overrides: dict[str, frozenset[str]] = {}
    for app, value in (_table(ctx, (*p, "categories"), t.get("categories", {})) or {}).items():
        overrides[app] = frozenset(_str_list(ctx, (*p, "categories", app), value, what="category"))
    rules = AppRules(
        default=AppDefault(default or "deny"),
        allowed=ids("allowed"),
        allowed_categories=cats("allowed_categories"),
        blocked=ids("blocked"),
        blocked_categories=cats("blocked_categories"),
        always_allowed=ids("always_allowed"),
        always_allowed_categories=cats("always_allowed_categories"),
        education_categories=cats("education_categories"),
        limits_minutes=limits,
        categories=overrides,
        payers=ids("payers"),
        emergency=ids("emergency"),
        emergency_categories=cats("emergency_categories"),
    )
    for app in sorted(rules.blocked & (rules.allowed | rules.always_allowed)):
        ctx.fail((*p, "blocked"), app, "also listed as allowed; an app is either blocked or allowed")
    return rules


def _spending(ctx: _Ctx, t: dict[str, Any] | None) -> SpendingCaps | None:
    if t is None:
        return None
    p = ("spending",)
    _keys(ctx, p, t, {"currency", "per_transaction", "per_day", "per_month", "ask_above"})
    currency = t.get("currency", "CNY")
    if not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
        ctx.fail((*p, "currency"), currency, "must be an ISO 4217 code such as \"CNY\"")
        currency = "CNY"
    limit = 10**12  # minor units; far above any child's purchase
    per_tx = _int(ctx, (*p, "per_transaction"), t.get("per_transaction", _MISSING), 0, limit)
    per_day = _int(ctx, (*p, "per_day"), t.get("per_day", _MISSING), 0, limit)
    per_month = _int(ctx, (*p, "per_month"), t.get("per_month", _MISSING), 0, limit)
    ask = _int(ctx, (*p, "ask_above"), t.get("ask_above", 0), 0, limit)
    if None in (per_tx, per_day, per_month, ask):
        return None
    assert per_tx is not None and per_day is not None and per_month is not None and ask is not None
    if per_day > per_month:
        ctx.fail((*p, "per_day"), per_day, f"larger than per_month ({per_month})")
    if per_tx > per_day:
        ctx.fail((*p, "per_transaction"), per_tx, f"larger than per_day ({per_day})")
    return SpendingCaps(currency, per_tx, per_day, per_month, ask)


def _filter(ctx: _Ctx, t: dict[str, Any] | None) -> FilterProfile | None:
    if t is None:
        return None
    p = ("filter",)
    _keys(ctx, p, t, {
        "block_categories", "allowlist_only", "allowlist_only_during", "safesearch", "youtube",
        "allow", "block", "egress_allow",
    })
    cats = _str_list(ctx, (*p, "block_categories"), t.get("block_categories", []))
    for c in cats:
        if c not in FILTER_CATEGORIES:
            ctx.fail((*p, "block_categories"), c, f"unknown category; one of {', '.join(FILTER_CATEGORIES)}")
    during = _str_list(ctx, (*p, "allowlist_only_during"), t.get("allowlist_only_during", []))
    for c in during:
        if c not in ("curfew", "school"):
            ctx.fail((*p, "allowlist_only_during"), c, "must be \"curfew\" or \"school\"")
    youtube = _choice(ctx, (*p, "youtube"), t.get("youtube", "strict"), tuple(y.value for y in YouTubeMode))

    def domains(key: str) -> frozenset[str]:
        raw = t.get(key, [])
        values = [v.lower().rstrip(".") for v in raw] if isinstance(raw, list) and all(
            isinstance(v, str) for v in raw) else raw
        return frozenset(_str_list(ctx, (*p, key), values, _DOMAIN_RE, "domain name"))

    return FilterProfile(
        block_categories=frozenset(cats),
        allowlist_only=bool(_bool(ctx, (*p, "allowlist_only"), t.get("allowlist_only", False))),
        allowlist_only_during=frozenset(during),
        safesearch=bool(_bool(ctx, (*p, "safesearch"), t.get("safesearch", True))),
        youtube=YouTubeMode(youtube or "strict"),
        allow_domains=domains("allow"),
        block_domains=domains("block"),
        egress_allow=_egress_allow(ctx, (*p, "egress_allow"), t.get("egress_allow", [])),
    )


EGRESS_ALLOW_MAX = 64
EGRESS_MIN_PREFIX = {4: 16, 6: 32}  # wider than this is a way around the filter, not an exception


def _egress_allow(ctx: _Ctx, path: Path_, raw: Any) -> frozenset[str]:
    """`filter.egress_allow`: networks an always-allowed app needs by address (CIDR, IPv4 or
    IPv6), normalised; a few, and none wider than a /16 (IPv4) or /32 (IPv6)."""
    values = _str_list(ctx, path, raw)
    if len(values) > EGRESS_ALLOW_MAX:
        ctx.fail(path, len(values), f"at most {EGRESS_ALLOW_MAX} networks")
        return frozenset()
    out: set[str] = set()
    for v in values:
        try:
            net = ipaddress.ip_network(v, strict=True)
        except ValueError as exc:
            ctx.fail(path, v, f"not an IP network (CIDR, e.g. 203.0.113.0/24): {exc}")
            continue
        if net.prefixlen < EGRESS_MIN_PREFIX[net.version]:
            ctx.fail(path, v, f"wider than /{EGRESS_MIN_PREFIX[net.version]}: an exception for "
                     "an app's fixed addresses, not a way around the filter")
            continue
        out.add(str(net))
    return frozenset(out)


def _enforcement(ctx: _Ctx, t: dict[str, Any] | None) -> Enforcement | None:
    if t is None:
        return None
    p = ("enforcement",)
    # terminate_after_minutes: read in policies written before lock_grace_seconds (stored,
    # signed, or files); it no longer means anything: a lock that does not hold always ends
    # the session after the grace, and 0 ("never") is gone.
    _keys(ctx, p, t, {"warn_minutes", "lock_grace_seconds", "terminate_after_minutes", "language",
                      "time_up"})
    warn = t.get("warn_minutes", [5, 1])
    minutes: list[int] = []
    if not isinstance(warn, list):
        ctx.fail((*p, "warn_minutes"), warn, "must be a list of minutes, e.g. [5, 1]")
    else:
        minutes = [m for m in (_int(ctx, (*p, "warn_minutes"), w, 1, 120) for w in warn) if m]
        if len(set(minutes)) != len(minutes):
            ctx.fail((*p, "warn_minutes"), warn, "lists the same minute twice")
    if "terminate_after_minutes" in t:
        _int(ctx, (*p, "terminate_after_minutes"), t["terminate_after_minutes"], 0, 240)
    grace = _int(ctx, (*p, "lock_grace_seconds"), t.get("lock_grace_seconds", LOCK_GRACE_DEFAULT),
                 *LOCK_GRACE_RANGE)
    language = _choice(ctx, (*p, "language"), t.get("language", "zh-CN"), LANGUAGES)
    time_up = _choice(ctx, (*p, "time_up"), t.get("time_up", TimeUpMode.LIMITED.value),
                      tuple(m.value for m in TimeUpMode))
    return Enforcement(tuple(sorted(set(minutes), reverse=True)), grace or LOCK_GRACE_DEFAULT,
                       language or "zh-CN", TimeUpMode(time_up or TimeUpMode.LIMITED.value))



def _usb(ctx: _Ctx, t: dict[str, Any] | None) -> UsbRules | None:
    """`usb.allow_classes` (class names, agent/core/usb.py UsbClass) and `usb.allow_devices`
    ("vvvv:pppp" or "vvvv:pppp:SERIAL", ids in lower-case hex): what the tablet accepts on
    USB beyond hubs, keyboards and mice. Absent: nothing more."""
    if t is None:
        return None
    p = ("usb",)
    _keys(ctx, p, t, {"allow_classes", "allow_devices"})
    always = {"hub", "hid"}
    classes = [c for c in _str_list(ctx, (*p, "allow_classes"), t.get("allow_classes", []), what="class name")
               if c not in always]
    out_classes = []
    for c in classes:
        try:
            out_classes.append(UsbClass(c))
        except ValueError:
            ctx.fail((*p, "allow_classes"), c, "unknown USB class; one of "
                     + ", ".join(u.value for u in UsbClass if u.value not in always))
    devices = []
    for entry in _str_list(ctx, (*p, "allow_devices"), t.get("allow_devices", []), what="device"):
        vendor, _, rest = entry.partition(":")
        product, colon, serial = rest.partition(":")
        if not (valid_hex4(vendor) and valid_hex4(product)) or (colon and not SERIAL_RE.match(serial)):
            ctx.fail((*p, "allow_devices"), entry, "not a device: \"vvvv:pppp\" or \"vvvv:pppp:SERIAL\" "
                     "(vendor and product ids as 4 lower-case hex digits, e.g. \"0781:5567\")")
            continue
        devices.append(DeviceMatch(vendor, product, serial if colon else None))
    return UsbRules(frozenset(out_classes), tuple(dict.fromkeys(devices)))
