"""Local days and times of day in the policy's timezone, as UTC instants.

Every rule is written in the guardian's local time ("22:00-06:00"); every instant the core
handles is UTC. These helpers are the only bridge, so DST is handled in one place: a local
day is [its midnight, the next midnight), 23 or 25 hours on DST change days; a time of day
that does not exist (spring forward) is shifted forward by the gap, as a wall clock moved
forward would show it, and a time that occurs twice (fall back) means its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from agent.core.policy import MINUTES_PER_DAY, ClockRange, WeeklyRanges


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def local_instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of local `day` at `minute` past midnight (minute may be 1440)."""
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
    return datetime.combine(day, time(minute // 60, minute % 60), tz).astimezone(UTC)


def day_span(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight of `day`, local midnight of the next day) in UTC."""
    return local_instant(day, 0, tz), local_instant(day + timedelta(days=1), 0, tz)


def range_instants(day: date, r: ClockRange, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A range that starts on local `day`; a midnight-crossing range ends the next day."""
    end_day = day + timedelta(days=1) if r.crosses_midnight and r.end != 0 else day
    end_minute = r.end if not (r.crosses_midnight and r.end == 0) else MINUTES_PER_DAY
    return local_instant(day, r.start, tz), local_instant(end_day, end_minute, tz)


def weekly_instants(
    weekly: WeeklyRanges, first: date, days: int, tz: ZoneInfo, skip: frozenset[date] = frozenset()
) -> list[tuple[datetime, datetime]]:
    """All ranges of a weekly rule that start on local days first .. first+days-1."""
    out: list[tuple[datetime, datetime]] = []
    for n in range(days):
        day = first + timedelta(days=n)
        if day in skip:
            continue
        out.extend(range_instants(day, r, tz) for r in weekly[day.weekday()])
    return sorted(out)


def inside(instant: datetime, spans: list[tuple[datetime, datetime]]) -> bool:
    return any(start <= instant < end for start, end in spans)
