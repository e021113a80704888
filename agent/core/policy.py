"""The guardian's rules as immutable values.

Built only by `agent.core.parse` (from TOML or JSON) or `agent.core.bands` (age-band
defaults); nothing mutates them, so a Decision computed from a Policy can be trusted to
describe exactly that Policy. Times of day are minutes since local midnight in the policy's
timezone; money is integer minor units of one ISO 4217 currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum, StrEnum

from agent.core.usb import UsbRules

MINUTES_PER_DAY = 1440


class AgeBand(StrEnum):
    """The Guide's age bands; content and defaults are keyed on them."""

    UNDER_3 = "under-3"
    AGE_3_8 = "3-8"
    AGE_8_12 = "8-12"
    AGE_12_16 = "12-16"
    AGE_16_18 = "16-18"


class Weekday(IntEnum):
    """ISO weekday minus one, so it matches `date.weekday()`."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6

    @property
    def key(self) -> str:
        return self.name.lower()


class DefaultKey(StrEnum):
    """Defaults a guardian may waive, in the policy (`waive = [...]`) or by a timed grant."""

    DAILY_BUDGET = "daily_budget"
    WINDOWS = "windows"
    CURFEW = "curfew"
    SCHOOL = "school"
    REST = "rest"
    GAMES = "games"
    APP_LIMITS = "app_limits"


class SchoolMode(StrEnum):
    LOCK = "lock"  # the device is locked but for always-allowed apps
    EDUCATION_ONLY = "education_only"  # education and always-allowed apps only


class TimeUpMode(StrEnum):
    """What the session does when time is up or a window closes."""

    LIMITED = "limited"  # stays open; only always-allowed apps run (the Guide's default)
    LOCK = "lock"  # the screen is locked (always-allowed apps keep running behind it)


class AppDefault(StrEnum):
    """What happens to an app that no rule names."""

    ALLOW = "allow"
    DENY = "deny"


class YouTubeMode(StrEnum):
    OFF = "off"
    MODERATE = "moderate"
    STRICT = "strict"


@dataclass(frozen=True, order=True)
class ClockRange:
    """A local time-of-day range [start, end) in minutes; end <= start crosses midnight."""

    start: int
    end: int

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def minutes(self) -> int:
        return (self.end - self.start) % MINUTES_PER_DAY or MINUTES_PER_DAY

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


WeeklyRanges = tuple[tuple[ClockRange, ...], ...]
"""Seven tuples of ranges, Monday first; a range belongs to the day it starts on."""


def same_every_day(*ranges: ClockRange) -> WeeklyRanges:
    return tuple(tuple(ranges) for _ in Weekday)


@dataclass(frozen=True)
class Budget:
    """One pooled daily total for the device, per weekday; None means no daily total."""

    daily_minutes: tuple[int | None, ...]

    def minutes_on(self, weekday: int) -> int | None:
        return self.daily_minutes[weekday]


@dataclass(frozen=True)
class Schedule:
    """Allowed windows per weekday; None means the day has no window restriction."""

    windows: tuple[tuple[ClockRange, ...] | None, ...]


@dataclass(frozen=True)
class Curfew:
    enabled: bool
    ranges: WeeklyRanges


@dataclass(frozen=True)
class SchoolHours:
    enabled: bool
    ranges: WeeklyRanges
    mode: SchoolMode
    holidays: frozenset[date]  # no school on these local dates


@dataclass(frozen=True)
class GamesRule:
    """The game regulator's rule: apps in game categories run only inside these ranges."""

    enabled: bool
    ranges: WeeklyRanges
    holidays: frozenset[date]  # public holidays: the holiday ranges apply
    holiday_ranges: tuple[ClockRange, ...]
    categories: frozenset[str]


@dataclass(frozen=True)
class RestRule:
    enabled: bool
    after_minutes: int  # continuous use before a reminder
    break_minutes: int  # a pause at least this long resets the streak
    enforce: bool  # lock for break_minutes instead of only reminding


@dataclass(frozen=True)
class AppRules:
    """Which apps may run. Always-allowed apps run even when the device is locked and
    never consume the device budget (calls, emergency, education, guardian-chosen)."""

    default: AppDefault
    allowed: frozenset[str]
    allowed_categories: frozenset[str]
    blocked: frozenset[str]
    blocked_categories: frozenset[str]
    always_allowed: frozenset[str]
    always_allowed_categories: frozenset[str]
    education_categories: frozenset[str]
    limits_minutes: Mapping[str, int]  # per-app daily limit, app ID -> minutes
    categories: Mapping[str, frozenset[str]]  # guardian's category overrides per app ID
    payers: frozenset[str]  # app IDs that may ask the spending broker to pay
    # What stays usable in a curfew or a guardian's "lock now": emergency, not calls or homework.
    emergency: frozenset[str] = frozenset()
    emergency_categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SpendingCaps:
    """Caps in integer minor units; 0 per transaction means no paid services at all."""

    currency: str
    per_transaction: int
    per_day: int
    per_month: int
    ask_above: int  # purchases above this wait for the guardian ("ask to buy")

    @property
    def paid_allowed(self) -> bool:
        return self.per_transaction > 0 and self.per_day > 0 and self.per_month > 0


@dataclass(frozen=True)
class FilterProfile:
    """Content filtering as data; the DNS filter turns it into answers."""

    block_categories: frozenset[str]
    allowlist_only: bool  # only `allow_domains` (and SafeSearch hosts) resolve
    allowlist_only_during: frozenset[str]  # "curfew", "school": allowlist-only then
    safesearch: bool
    youtube: YouTubeMode
    allow_domains: frozenset[str]
    block_domains: frozenset[str]
    # Fixed networks (CIDR text) the child's traffic may reach without a lookup: the one
    # exception to the closed egress (an always-allowed app's media range, say); every
    # other address must have been resolved through the filter recently.
    egress_allow: frozenset[str] = frozenset()


LOCK_GRACE_DEFAULT = 60  # seconds: enforcement.lock_grace_seconds
LOCK_GRACE_RANGE = (15, 600)


@dataclass(frozen=True)
class Enforcement:
    warn_minutes: tuple[int, ...]  # warnings this many minutes before a lock, descending
    lock_grace_seconds: int  # a session not verifiably locked this long into a lock is ended
    language: str  # the child's language for lock reasons and warnings
    time_up: TimeUpMode = TimeUpMode.LIMITED


@dataclass(frozen=True)
class Policy:
    version: int
    age_band: AgeBand
    timezone: str
    retention_days: int
    budget: Budget
    schedule: Schedule
    curfew: Curfew
    school: SchoolHours
    games: GamesRule
    rest: RestRule
    apps: AppRules
    spending: SpendingCaps
    filter: FilterProfile
    enforcement: Enforcement
    waived: frozenset[DefaultKey] = field(default_factory=frozenset)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Dotted setting -> "band default" | "guardian" | "waived": what the guardian sees."""
    usb: UsbRules = field(default_factory=UsbRules)  # USB classes/devices allowed (agent/core/usb.py)
