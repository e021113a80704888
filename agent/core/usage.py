"""What the child has used: intervals on the trusted timeline, and interval arithmetic.

The OS layers report facts (the session became active/idle/locked, the device slept, an
app started/stopped) through `agent.core.activity`; closed intervals land here. All
instants are timezone-aware UTC datetimes on the trusted timeline (`agent.core.clock`).
Usage is *summed*, never unioned across days, so a trusted-clock correction backwards can
never make time already used disappear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, order=True)
class Interval:
    """[start, end) on the trusted timeline."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval instants must be timezone-aware")
        if self.end < self.start:
            raise ValueError(f"interval ends before it starts: {self.start} > {self.end}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def clip(self, start: datetime, end: datetime) -> Interval | None:
        s, e = max(self.start, start), min(self.end, end)
        return Interval(s, e) if s < e else None


@dataclass(frozen=True)
class Usage:
    """Active session time and per-app running time. Open intervals are closed at `now`
    by the caller (`agent.core.activity.ActivityTracker.usage_at`)."""

    active: tuple[Interval, ...] = ()
    apps: Mapping[str, tuple[Interval, ...]] = field(default_factory=dict)
    app_categories: Mapping[str, frozenset[str]] = field(default_factory=dict)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals as a sorted list of disjoint intervals."""
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def subtract(base: list[Interval], cut: list[Interval]) -> list[Interval]:
    """`base` minus `cut`; both sorted and disjoint (as `merge` returns)."""
    out: list[Interval] = []
    j = 0
    for iv in base:
        start = iv.start
        while j < len(cut) and cut[j].end <= start:
            j += 1
        k = j
        while k < len(cut) and cut[k].start < iv.end:
            if cut[k].start > start:
                out.append(Interval(start, cut[k].start))
            start = max(start, cut[k].end)
            k += 1
        if start < iv.end:
            out.append(Interval(start, iv.end))
    return out


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Intersection of two sorted disjoint interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if s < e:
            out.append(Interval(s, e))
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return out


def seconds_within(intervals: Iterable[Interval], start: datetime, end: datetime) -> float:
    """Sum (not union) of the parts of `intervals` inside [start, end)."""
    total = 0.0
    for iv in intervals:
        part = iv.clip(start, end)
        if part is not None:
            total += part.seconds
    return total


def total(intervals: Iterable[Interval]) -> timedelta:
    return timedelta(seconds=sum(iv.seconds for iv in intervals))
