"""decide(policy, now, usage, grants) -> Decision: the one answer every enforcement layer acts on.

Pure: `now` is the trusted instant (agent.core.clock), `usage` is what the child used (open
intervals closed at `now`), grants are the guardian's exceptions. The time rules are
piecewise constant between "boundaries" (window, curfew, school and game-hour edges, local
midnights, grant edges), so the future is simulated segment by segment, assuming the child
keeps using the device, to find the next lock, its warnings, and when a lock ends. The
horizon is eight days: no rule repeats over a longer period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.core.calendar import day_span, inside, local_day, weekly_instants, zone
from agent.core.decision import EMERGENCY_ONLY, AppAccess, Change, ChangeKind, Decision, LockReason
from agent.core.grants import Grant, GrantKind
from agent.core.policy import AppDefault, DefaultKey, FilterProfile, Policy, SchoolMode, TimeUpMode
from agent.core.usage import Interval, Usage, intersect, merge, seconds_within, subtract

HORIZON_DAYS = 8
Spans = list[tuple[datetime, datetime]]


@dataclass(frozen=True)
class _Rules:
    """The policy's time rules laid out as UTC spans over the horizon."""

    tz: ZoneInfo
    windows: dict[date, Spans | None]  # None: that day has no window restriction
    window_spans: Spans
    curfew: Spans
    school: Spans
    games: Spans
    day_starts: list[datetime]

    def boundaries(self, after: datetime, until: datetime, grants: Iterable[Grant]) -> list[datetime]:
        edges = {t for spans in (self.window_spans, self.curfew, self.school, self.games)
                 for span in spans for t in span}
        edges.update(self.day_starts)
        for g in grants:
            edges.update((g.issued_at, g.expires_at))
        return [*sorted(t for t in edges if after < t < until), until]


def _layout(policy: Policy, now: datetime) -> _Rules:
    tz = zone(policy.timezone)
    first = local_day(now, tz) - timedelta(days=1)
    days = HORIZON_DAYS + 2
    windows: dict[date, Spans | None] = {}
    window_spans: Spans = []
    for n in range(days):
        day = first + timedelta(days=n)
        ranges = policy.schedule.windows[day.weekday()]
        spans = None if ranges is None else weekly_instants((ranges,) * 7, day, 1, tz)
        windows[day] = spans
        window_spans += spans or []
    games = policy.games
    game_spans: Spans = []
    if games.enabled:
        game_spans = weekly_instants(games.ranges, first, days, tz, skip=games.holidays)
        for day in sorted(games.holidays):
            game_spans += weekly_instants((games.holiday_ranges,) * 7, day, 1, tz)
    school = policy.school
    return _Rules(
        tz=tz,
        windows=windows,
        window_spans=window_spans,
        curfew=weekly_instants(policy.curfew.ranges, first, days, tz) if policy.curfew.enabled else [],
        school=weekly_instants(school.ranges, first, days, tz, skip=school.holidays)
        if school.enabled else [],
        games=sorted(game_spans),
        day_starts=[day_span(first + timedelta(days=n), tz)[0] for n in range(days + 1)],
    )


@dataclass(frozen=True)
class _Grants:
    grants: tuple[Grant, ...]
    policy_waived: frozenset[DefaultKey]

    def waived(self, key: DefaultKey, at: datetime) -> bool:
        return key in self.policy_waived or any(
            g.kind is GrantKind.WAIVER and g.waives is key and g.active_at(at) for g in self.grants
        )

    def unlocked(self, at: datetime) -> bool:
        """An unlock in force, and no guardian lock (a lock wins: it is the safer answer)."""
        return not self.guardian_locked(at) and any(
            g.kind is GrantKind.UNLOCK and g.active_at(at) for g in self.grants)

    def guardian_locked(self, at: datetime) -> bool:
        return any(g.kind is GrantKind.LOCK and g.active_at(at) for g in self.grants)

    def leave_until(self, at: datetime) -> datetime | None:
        """The end of a "leave minor mode" in force at `at`, if any (never during a lock)."""
        if self.guardian_locked(at):
            return None
        ends = [g.expires_at for g in self.grants if g.kind is GrantKind.LEAVE and g.active_at(at)]
        return max(ends) if ends else None

    def leave_spans(self) -> list[Interval]:
        return merge(Interval(g.issued_at, g.expires_at) for g in self.grants if g.kind is GrantKind.LEAVE)

    def bonus_minutes(self, day: date, at: datetime) -> int:
        return sum(
            g.minutes for g in self.grants
            if g.kind is GrantKind.BONUS and g.day == day and g.active_at(at)
        )


class _Evaluator:
    """Time rules at an instant: the pieces `decide` and its simulation both need."""

    def __init__(self, policy: Policy, rules: _Rules, grants: _Grants) -> None:
        self.policy, self.rules, self.grants = policy, rules, grants

    def time_locks(self, at: datetime) -> list[LockReason]:
        """Locks that come from the clock alone (not from usage), most important first."""
        g, r = self.grants, self.rules
        if g.guardian_locked(at):
            return [LockReason.GUARDIAN_LOCK]
        if g.unlocked(at):
            return []
        reasons: list[LockReason] = []
        if not g.waived(DefaultKey.CURFEW, at) and inside(at, r.curfew):
            reasons.append(LockReason.CURFEW)
        if (self.policy.school.mode is SchoolMode.LOCK and not g.waived(DefaultKey.SCHOOL, at)
                and inside(at, r.school)):
            reasons.append(LockReason.SCHOOL_HOURS)
        if not g.waived(DefaultKey.WINDOWS, at) and not self._in_window(at):
            reasons.append(LockReason.OUTSIDE_WINDOW)
        return reasons

    def _in_window(self, at: datetime) -> bool:
        today = local_day(at, self.rules.tz)
        spans = self.rules.windows.get(today)
        if spans is None:
            return True
        previous = self.rules.windows.get(today - timedelta(days=1)) or []
        return inside(at, spans) or inside(at, previous)

    def budget_seconds(self, day: date, at: datetime) -> int | None:
        """Today's total with bonus grants; None when there is no total or it is waived."""
        minutes = self.policy.budget.minutes_on(day.weekday())
        if minutes is None or self.grants.waived(DefaultKey.DAILY_BUDGET, at):
            return None
        return (minutes + self.grants.bonus_minutes(day, at)) * 60

    def budget_applies(self, at: datetime) -> bool:
        return not self.grants.unlocked(at)

    def rest_enforced(self, at: datetime) -> bool:
        rest = self.policy.rest
        return (rest.enabled and rest.enforce and not self.grants.waived(DefaultKey.REST, at)
                and not self.grants.unlocked(at))

    def education_only(self, at: datetime) -> bool:
        return (self.policy.school.mode is SchoolMode.EDUCATION_ONLY
                and not self.grants.waived(DefaultKey.SCHOOL, at)
                and not self.grants.unlocked(at) and inside(at, self.rules.school))

    def games_open(self, at: datetime) -> bool:
        if not self.policy.games.enabled or self.grants.waived(DefaultKey.GAMES, at):
            return True
        return inside(at, self.rules.games)

    def filter_at(self, at: datetime) -> FilterProfile:
        f = self.policy.filter
        during = (("curfew" in f.allowlist_only_during and inside(at, self.rules.curfew))
                  or ("school" in f.allowlist_only_during and inside(at, self.rules.school)))
        return replace(f, allowlist_only=True) if during and not f.allowlist_only else f


@dataclass(frozen=True)
class _Streak:
    start: datetime | None
    end: datetime | None  # end of the last activity in the streak
    active_seconds: float


def _streak(active: list[Interval], now: datetime, break_minutes: int) -> _Streak:
    """The current run of use with no pause of `break_minutes` or more."""
    gap = timedelta(minutes=break_minutes)
    past = [iv for iv in active if iv.start < now]
    if not past or now - past[-1].end >= gap:
        return _Streak(None, None, 0.0)
    seconds, start = 0.0, past[-1].start
    for i in range(len(past) - 1, -1, -1):
        seconds += (min(past[i].end, now) - past[i].start).total_seconds()
        start = past[i].start
        if i > 0 and past[i].start - past[i - 1].end >= gap:
            break
    return _Streak(start, min(past[-1].end, now), seconds)


def _budget_used(usage: Usage, access: AppAccess, start: datetime, end: datetime
                 ) -> tuple[list[Interval], float]:
    """Active time in [start, end) that consumes the budget: all of it, except time when only
    always-allowed apps (calls, emergency, education...) were running."""
    active = merge(usage.active)
    exempt: list[Interval] = []
    budgeted: list[Interval] = []
    for app_id, intervals in usage.apps.items():
        cats = usage.app_categories.get(app_id, frozenset())
        (exempt if access.is_always_allowed(app_id, cats) else budgeted).extend(intervals)
    only_exempt = subtract(intersect(active, merge(exempt)), merge(budgeted))
    used = seconds_within(usage.active, start, end) - seconds_within(only_exempt, start, end)
    return active, max(0.0, used)


def budget_used_seconds(policy: Policy, usage: Usage, start: datetime, end: datetime) -> int:
    """Time in [start, end) that counted against the device budget (what the child's
    "used today" shows; the guardian's daily summary reports the same number)."""
    access = AppAccess(policy.apps, False, False, True, frozenset(), policy.games.categories)
    return int(_budget_used(usage, access, start, end)[1])


def decide(policy: Policy, now: datetime, usage: Usage, grants: Iterable[Grant] = ()) -> Decision:
    """What is allowed at `now`, and what happens next. Deterministic in its arguments."""
    rules = _layout(policy, now)
    g = _Grants(tuple(grants), policy.waived)
    ev = _Evaluator(policy, rules, g)
    today = local_day(now, rules.tz)
    day_start, day_end = day_span(today, rules.tz)
    leave = g.leave_spans()
    if leave:  # time outside minor mode is an adult's: it never counts for the child
        usage = _without(usage, leave)
    leave_until = g.leave_until(now)
    if leave_until is not None:
        return _outside_minor_mode(policy, now, usage, leave_until, day_start, day_end)

    base_access = AppAccess(policy.apps, False, False, True, frozenset(), policy.games.categories)
    active, used = _budget_used(usage, base_access, day_start, day_end)
    app_used = {
        app_id: int(seconds_within(intersect(merge(usage.apps.get(app_id, ())), active), day_start, day_end))
        for app_id in policy.apps.limits_minutes
    }
    limits_apply = not g.waived(DefaultKey.APP_LIMITS, now) and not g.unlocked(now)
    limits_spent = frozenset(
        a for a, m in policy.apps.limits_minutes.items() if limits_apply and app_used[a] >= m * 60
    )
    streak = _streak(active, now, policy.rest.break_minutes)
    budget = ev.budget_seconds(today, now)

    reasons = ev.time_locks(now)
    if budget is not None and ev.budget_applies(now) and used >= budget:
        reasons.append(LockReason.BUDGET_SPENT)
    rest_due_at = None
    if streak.start is not None and streak.end is not None:
        rest_left = policy.rest.after_minutes * 60 - streak.active_seconds
        if ev.rest_enforced(now) and rest_left <= 0:
            reasons.append(LockReason.REST_BREAK)
            rest_due_at = streak.end + timedelta(minutes=policy.rest.break_minutes)
    locked = bool(reasons)

    bounds = rules.boundaries(now, now + timedelta(days=HORIZON_DAYS), g.grants)
    if rest_due_at is not None:
        bounds = sorted({*bounds, rest_due_at})
    remaining: int | None = None
    warning_due: int | None = None
    changes: list[Change] = []
    unlock = None
    reopen = None
    if locked:
        unlock = _next_unlock(ev, today, used, rest_due_at, bounds)
        if unlock is not None:
            changes.append(Change(unlock, ChangeKind.UNLOCK))
    else:
        lock = _next_lock(ev, policy, now, today, used, streak, bounds)
        if lock is not None:
            at, why, lock_day, spent = lock
            reopen = _reopen_after(ev, policy, at, why, lock_day, spent, bounds)
            remaining = max(0, int((at - now).total_seconds()))
            changes.append(Change(at, ChangeKind.LOCK, why))
            for minutes in policy.enforcement.warn_minutes:
                warn_at = at - timedelta(minutes=minutes)
                if warn_at > now:
                    changes.append(Change(warn_at, ChangeKind.WARNING, why))
                elif remaining <= minutes * 60:
                    warning_due = minutes
    rest_reminder_due = False
    if policy.rest.enabled and not g.waived(DefaultKey.REST, now) and streak.start is not None:
        left = policy.rest.after_minutes * 60 - streak.active_seconds
        rest_reminder_due = left <= 0
        if left > 0 and not locked:
            changes.append(Change(now + timedelta(seconds=left), ChangeKind.REST_REMINDER))
    for limited, minutes in policy.apps.limits_minutes.items():
        running = any(iv.end >= now for iv in usage.apps.get(limited, ()))
        if running and limits_apply and limited not in limits_spent and not locked:
            changes.append(Change(now + timedelta(seconds=minutes * 60 - app_used[limited]), ChangeKind.APPS))
    for edge in bounds[:-1]:
        if ev.games_open(edge) != ev.games_open(now) or ev.education_only(edge) != ev.education_only(now):
            changes.append(Change(edge, ChangeKind.APPS))
            break
    for edge in bounds[:-1]:
        if ev.filter_at(edge) != ev.filter_at(now):
            changes.append(Change(edge, ChangeKind.FILTER))
            break

    access = AppAccess(
        policy.apps, locked, ev.education_only(now), ev.games_open(now), limits_spent,
        policy.games.categories, emergency_only=bool(EMERGENCY_ONLY.intersection(reasons)),
    )
    return Decision(
        at=now,
        policy_version=policy.version,
        locked=locked,
        reasons=tuple(reasons),
        used_seconds=int(used),
        budget_seconds=budget,
        remaining_seconds=remaining,
        unlock_at=unlock,
        next_change=min(changes, key=lambda c: c.at) if changes else None,
        warning_due=warning_due,
        rest_reminder_due=rest_reminder_due,
        rest_streak_start=streak.start,
        continuous_seconds=int(streak.active_seconds),
        apps=access,
        app_used_seconds=app_used,
        filter=ev.filter_at(now),
        spending=policy.spending,
        timezone=policy.timezone,
        lock_screen=locked and policy.enforcement.time_up is TimeUpMode.LOCK,
        reopens_at=reopen,
        language=policy.enforcement.language,
    )


def _without(usage: Usage, spans: list[Interval]) -> Usage:
    return replace(usage, active=tuple(subtract(merge(usage.active), spans)),
                   apps={a: tuple(subtract(merge(ivs), spans)) for a, ivs in usage.apps.items()})


def _outside_minor_mode(policy: Policy, now: datetime, usage: Usage, until: datetime,
                        day_start: datetime, day_end: datetime) -> Decision:
    """A guardian's "leave minor mode": nothing is locked, blocked or filtered until `until`
    (spending caps still hold: they protect the guardian's money, not the child's time)."""
    everything = replace(policy.apps, default=AppDefault.ALLOW, blocked=frozenset(),
                         blocked_categories=frozenset(), limits_minutes={})
    open_filter = replace(policy.filter, block_categories=frozenset(), allowlist_only=False,
                          allowlist_only_during=frozenset(), safesearch=False, block_domains=frozenset())
    base = AppAccess(policy.apps, False, False, True, frozenset(), policy.games.categories)
    _, used = _budget_used(usage, base, day_start, day_end)
    return Decision(
        at=now, policy_version=policy.version, locked=False, reasons=(), used_seconds=int(used),
        budget_seconds=None, remaining_seconds=None, unlock_at=None,
        next_change=Change(until, ChangeKind.MINOR_MODE), warning_due=None, rest_reminder_due=False,
        rest_streak_start=None, continuous_seconds=0,
        apps=AppAccess(everything, False, False, True, frozenset(), policy.games.categories),
        app_used_seconds={}, filter=open_filter, spending=policy.spending, timezone=policy.timezone,
        minor_mode=False, language=policy.enforcement.language)


def _next_lock(ev: _Evaluator, policy: Policy, now: datetime, today: date, used: float,
               streak: _Streak, bounds: list[datetime]) -> tuple[datetime, LockReason, date, float] | None:
    """With continuous use from `now`, when and why the first lock comes (and that local
    day's budget use at that moment, for `_reopen_after`)."""
    t, day, spent = now, today, used
    rest_left = policy.rest.after_minutes * 60 - streak.active_seconds
    for edge in bounds:
        locks = ev.time_locks(t)
        if locks:
            return t, locks[0], day, spent
        segment = (edge - t).total_seconds()
        budget = ev.budget_seconds(day, t)
        candidates: list[tuple[float, LockReason]] = []
        if budget is not None and ev.budget_applies(t):
            candidates.append((max(0.0, budget - spent), LockReason.BUDGET_SPENT))
        if ev.rest_enforced(t):
            candidates.append((max(0.0, rest_left), LockReason.REST_BREAK))
        for seconds, why in sorted(candidates, key=lambda c: c[0]):
            if seconds < segment:
                return t + timedelta(seconds=seconds), why, day, spent + seconds
        spent += segment
        rest_left -= segment
        t = edge
        if local_day(t, ev.rules.tz) != day:
            day, spent = local_day(t, ev.rules.tz), 0.0
    return None


def _reopen_after(ev: _Evaluator, policy: Policy, at: datetime, why: LockReason, day: date,
                  spent: float, bounds: list[datetime]) -> datetime | None:
    """When the lock coming at `at` would end: what a warning tells the child."""
    rest_until = at + timedelta(minutes=policy.rest.break_minutes) if why is LockReason.REST_BREAK else None
    later = sorted({*(b for b in bounds if b > at), *([rest_until] if rest_until else [])})
    return _next_unlock(ev, day, spent, rest_until, later)


def _next_unlock(ev: _Evaluator, today: date, used: float,
                 rest_until: datetime | None, bounds: list[datetime]) -> datetime | None:
    """While locked nothing is used: the first boundary where no lock holds."""
    for edge in bounds:
        day = local_day(edge, ev.rules.tz)
        spent = used if day == today else 0.0
        if ev.time_locks(edge):
            continue
        if ev.grants.unlocked(edge):
            return edge
        budget = ev.budget_seconds(day, edge)
        if budget is not None and spent >= budget:
            continue
        if rest_until is not None and edge < rest_until:
            continue
        return edge
    return None
