"""Facts from the OS layers become usage intervals: the one API every adapter reports through.

The session layer says whether time counts now (session active, not idle, not locked, not
asleep); the app tracker says which apps run. The tracker keeps the open intervals and hands
back closed ones for the store. `checkpoint` closes and reopens every open interval at an
instant so the store can commit usage in small pieces: a kill -9 then loses at most one
checkpoint period, never a committed interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from agent.core.usage import Interval, Usage

SESSION = ""  # the key of the session's own interval in `closed` results


@dataclass(frozen=True)
class Closed:
    """A closed interval: the session's (app_id == SESSION) or an app's."""

    app_id: str
    interval: Interval
    categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ActivityTracker:
    active_since: datetime | None = None
    apps_since: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))
    categories: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    def set_counting(self, counting: bool, at: datetime) -> tuple[ActivityTracker, list[Closed]]:
        """The session starts or stops counting (active and not idle/locked/asleep)."""
        if counting and self.active_since is None:
            return replace(self, active_since=at), []
        if not counting and self.active_since is not None:
            closed = _close(SESSION, self.active_since, at)
            return replace(self, active_since=None), closed
        return self, []

    def app_started(self, app_id: str, categories: frozenset[str], at: datetime) -> ActivityTracker:
        if app_id in self.apps_since:
            return self
        return replace(
            self,
            apps_since=MappingProxyType({**self.apps_since, app_id: at}),
            categories=MappingProxyType({**self.categories, app_id: categories}),
        )

    def app_stopped(self, app_id: str, at: datetime) -> tuple[ActivityTracker, list[Closed]]:
        since = self.apps_since.get(app_id)
        if since is None:
            return self, []
        apps = {k: v for k, v in self.apps_since.items() if k != app_id}
        closed = _close(app_id, since, at, self.categories.get(app_id, frozenset()))
        return replace(self, apps_since=MappingProxyType(apps)), closed

    def checkpoint(self, at: datetime) -> tuple[ActivityTracker, list[Closed]]:
        """Close every open interval at `at` and reopen it there."""
        closed: list[Closed] = []
        if self.active_since is not None:
            closed += _close(SESSION, self.active_since, at)
        for app_id, since in self.apps_since.items():
            closed += _close(app_id, since, at, self.categories.get(app_id, frozenset()))
        reopened = {k: max(v, at) for k, v in self.apps_since.items()}
        active = None if self.active_since is None else max(self.active_since, at)
        return replace(self, active_since=active, apps_since=MappingProxyType(reopened)), closed

    def restart_at(self, at: datetime) -> ActivityTracker:
        """Reopen every open interval at `at`: after the trusted clock was corrected, so
        no interval spans the correction (close them at the old instant first)."""
        return replace(
            self,
            active_since=None if self.active_since is None else at,
            apps_since=MappingProxyType(dict.fromkeys(self.apps_since, at)),
        )

    def usage_at(self, stored: Usage, at: datetime) -> Usage:
        """Stored (committed) usage plus the open intervals up to `at`."""
        _, pending = self.checkpoint(at)
        return add_closed(stored, pending)


def add_closed(usage: Usage, closed: list[Closed]) -> Usage:
    active = list(usage.active)
    apps = {k: list(v) for k, v in usage.apps.items()}
    cats = dict(usage.app_categories)
    for c in closed:
        if c.app_id == SESSION:
            active.append(c.interval)
        else:
            apps.setdefault(c.app_id, []).append(c.interval)
            cats[c.app_id] = c.categories
    return Usage(tuple(active), {k: tuple(v) for k, v in apps.items()}, cats)


def _close(app_id: str, since: datetime, at: datetime, cats: frozenset[str] = frozenset()) -> list[Closed]:
    return [Closed(app_id, Interval(since, at), cats)] if at > since else []
