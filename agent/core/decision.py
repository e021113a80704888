"""What `decide` returns: everything each enforcement layer needs, and nothing it must compute.

Adapters read a Decision and act; they never re-derive policy. The exec gate asks
`decision.apps.verdict(app_id, categories)`; the DNS filter takes `decision.filter`; the
spending broker takes `decision.spending`; the session layer takes `locked`, `reasons`,
`warning_due` and `next_change`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from agent.core.policy import AppDefault, AppRules, FilterProfile, SpendingCaps


class LockReason(StrEnum):
    BUDGET_SPENT = "budget_spent"
    OUTSIDE_WINDOW = "outside_window"
    CURFEW = "curfew"
    SCHOOL_HOURS = "school_hours"
    REST_BREAK = "rest_break"
    GUARDIAN_LOCK = "guardian_lock"  # the guardian locked the device from the dashboard
    STORAGE_FAILURE = "storage_failure"  # the agent cannot write its state (a full disk)


class ChangeKind(StrEnum):
    LOCK = "lock"
    UNLOCK = "unlock"
    WARNING = "warning"
    REST_REMINDER = "rest_reminder"
    APPS = "apps"  # an app's verdict changes (game hours, a per-app limit, school mode)
    FILTER = "filter"  # the filter profile changes (allowlist-only during curfew/school)
    MINOR_MODE = "minor_mode"  # a period outside minor mode (a guardian's "leave") ends


@dataclass(frozen=True)
class Change:
    """The next moment the Decision would differ, assuming the child keeps using the device."""

    at: datetime
    kind: ChangeKind
    reason: LockReason | None = None


class AppBlockReason(StrEnum):
    NOT_ALLOWED = "not_allowed"  # no rule allows it (allowlist)
    BLOCKED = "blocked"  # the guardian blocked it or its category
    DEVICE_LOCKED = "device_locked"  # the device is locked; only always-allowed apps run
    LIMIT_SPENT = "limit_spent"  # its own daily limit is used up
    GAME_HOURS = "game_hours"  # a game outside the game hours
    SCHOOL_HOURS = "school_hours"  # school hours: education apps only


@dataclass(frozen=True)
class AppVerdict:
    allowed: bool
    reason: AppBlockReason | None
    always_allowed: bool  # runs while locked and does not consume the device budget


@dataclass(frozen=True)
class AppAccess:
    """Which app IDs may run now. Pure: callers give the app's categories (from the catalogue)."""

    rules: AppRules
    device_locked: bool
    education_only: bool
    games_open: bool
    limits_spent: frozenset[str]
    game_categories: frozenset[str]
    emergency_only: bool = False  # a curfew or a guardian's lock: only the emergency set runs

    def categories_of(self, app_id: str, categories: frozenset[str]) -> frozenset[str]:
        """The guardian's category override wins over the catalogue's."""
        return self.rules.categories.get(app_id, categories)

    def is_always_allowed(self, app_id: str, categories: frozenset[str]) -> bool:
        cats = self.categories_of(app_id, categories)
        return app_id in self.rules.always_allowed or bool(
            cats & self.rules.always_allowed_categories
        )

    def is_emergency(self, app_id: str, categories: frozenset[str]) -> bool:
        cats = self.categories_of(app_id, categories)
        return app_id in self.rules.emergency or bool(cats & self.rules.emergency_categories)

    def verdict(self, app_id: str, categories: frozenset[str] = frozenset()) -> AppVerdict:
        cats = self.categories_of(app_id, categories)
        rules = self.rules
        if app_id in rules.blocked:
            return AppVerdict(False, AppBlockReason.BLOCKED, False)
        if self.emergency_only and self.device_locked:
            if self.is_emergency(app_id, cats):
                return AppVerdict(True, None, True)
            return AppVerdict(False, AppBlockReason.DEVICE_LOCKED, False)
        if self.is_always_allowed(app_id, cats):
            return AppVerdict(True, None, True)
        if cats & rules.blocked_categories:
            return AppVerdict(False, AppBlockReason.BLOCKED, False)
        listed = app_id in rules.allowed or bool(cats & rules.allowed_categories)
        if not listed and rules.default is AppDefault.DENY:
            return AppVerdict(False, AppBlockReason.NOT_ALLOWED, False)
        if self.device_locked:
            return AppVerdict(False, AppBlockReason.DEVICE_LOCKED, False)
        if self.education_only and not cats & rules.education_categories:
            return AppVerdict(False, AppBlockReason.SCHOOL_HOURS, False)
        if app_id in self.limits_spent:
            return AppVerdict(False, AppBlockReason.LIMIT_SPENT, False)
        if not self.games_open and self._is_game(cats):
            return AppVerdict(False, AppBlockReason.GAME_HOURS, False)
        return AppVerdict(True, None, False)

    def _is_game(self, categories: frozenset[str]) -> bool:
        return bool(categories & self.game_categories)


@dataclass(frozen=True)
class Decision:
    """The answer to "what is allowed now, and what happens next?"."""

    at: datetime
    policy_version: int
    locked: bool
    reasons: tuple[LockReason, ...]  # why locked, most important first; empty when unlocked
    used_seconds: int  # device budget used today
    budget_seconds: int | None  # today's total with bonus grants; None = no daily total
    remaining_seconds: int | None  # until the next lock with continuous use; None = none ahead
    unlock_at: datetime | None  # when locked: when the lock ends (None = not within 8 days)
    next_change: Change | None
    warning_due: int | None  # minutes before the lock whose warning is due now (5, 1 ...)
    rest_reminder_due: bool
    rest_streak_start: datetime | None  # identifies the streak, so a reminder is sent once
    continuous_seconds: int  # the current streak of use without a real break
    apps: AppAccess
    app_used_seconds: dict[str, int]  # per-app use today, for apps with a limit
    filter: FilterProfile  # the profile in force now (allowlist-only evaluated)
    spending: SpendingCaps
    timezone: str
    minor_mode: bool = True  # False while a guardian's "leave minor mode" is in force
    # Locked, and the policy's time_up is "lock": the screen is locked too. Otherwise a lock
    # is the limited mode: the session stays open and `apps` lets only always-allowed apps
    # run (only the emergency set in a curfew or a guardian's lock).
    lock_screen: bool = False
    # Unlocked with a lock ahead: when that lock would end (what a warning tells the child).
    reopens_at: datetime | None = None
    language: str = "zh-CN"  # the child's (the policy's enforcement.language), for what layers say

    @property
    def reason(self) -> LockReason | None:
        return self.reasons[0] if self.reasons else None


EMERGENCY_ONLY = frozenset({LockReason.CURFEW, LockReason.GUARDIAN_LOCK})


def forced_lock(decision: Decision, reason: LockReason, *, screen: bool = False) -> Decision:
    """`decision` with the device locked for `reason` whatever the rules say (the agent
    cannot keep its records: a full disk). Only always-allowed apps run, as in any lock;
    no warning or unlock is announced, since the lock ends when the cause does. `screen`:
    the policy asks for a screen lock (time_up = "lock")."""
    if decision.locked and decision.reason is reason:
        return decision
    return replace(decision, locked=True, reasons=(reason, *(r for r in decision.reasons if r is not reason)),
                   remaining_seconds=0, unlock_at=None, next_change=None, warning_due=None, reopens_at=None,
                   apps=replace(decision.apps, device_locked=True),
                   lock_screen=decision.lock_screen or screen)
