"""The guardian's remote answers as grants: "lock now", "unlock until", "leave minor mode".

Pure `decide` with explicit usage: a lock wins over an unlock (the safer answer), a leave
period lifts every restriction but spending caps, and time used outside minor mode never
counts against the child's budget.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from support.scenario import iso, policy

from agent.core.decide import decide
from agent.core.decision import AppBlockReason, ChangeKind, LockReason
from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.usage import Interval, Usage

NOON = iso("2026-11-24T12:00")  # a Tuesday, inside the 8-12 band's windows
POLICY = policy(budget={"daily_minutes": 60}, apps={"default": "allow", "blocked": ["org.game.Shooter"]},
                filter={"block_categories": ["adult"]})


def _grant(kind: GrantKind, start: datetime, minutes: int, gid: str = "g1") -> Grant:
    return Grant(id=gid, kind=kind, issued_at=start, expires_at=start + timedelta(minutes=minutes),
                 source=GrantSource.DASHBOARD)


def _used(minutes: int, end: datetime = NOON) -> Usage:
    return Usage(active=(Interval(end - timedelta(minutes=minutes), end),))


def test_guardian_lock_locks_an_unrestricted_moment_until_it_expires() -> None:
    free = decide(POLICY, NOON, Usage())
    assert not free.locked
    lock = _grant(GrantKind.LOCK, NOON - timedelta(minutes=1), 30)
    d = decide(POLICY, NOON, Usage(), [lock])
    assert d.locked and d.reasons == (LockReason.GUARDIAN_LOCK,)
    assert d.unlock_at == lock.expires_at
    assert d.apps.verdict("org.example.Paint").reason is AppBlockReason.DEVICE_LOCKED
    assert not decide(POLICY, lock.expires_at, Usage(), [lock]).locked
    # "Lock now" keeps only the emergency set: not even calls.
    assert d.apps.emergency_only and not d.lock_screen
    assert d.apps.verdict("org.example.Calls", frozenset({"Telephony"})).reason is AppBlockReason.DEVICE_LOCKED
    assert d.apps.verdict("org.example.SOS", frozenset({"Emergency"})).allowed


def test_a_lock_wins_over_an_unlock_in_force_at_the_same_time() -> None:
    unlock = _grant(GrantKind.UNLOCK, NOON - timedelta(minutes=5), 60, "u")
    lock = _grant(GrantKind.LOCK, NOON - timedelta(minutes=1), 10, "l")
    assert decide(POLICY, NOON, _used(60), [unlock]).locked is False  # the unlock lifts the budget
    d = decide(POLICY, NOON, _used(60), [unlock, lock])
    assert d.locked and d.reason is LockReason.GUARDIAN_LOCK


def test_leave_minor_mode_lifts_locks_blocks_and_filtering_until_it_ends() -> None:
    before = _used(60, end=NOON - timedelta(minutes=1))  # the child's hour, before the leave
    spent = decide(POLICY, NOON, before)
    assert spent.locked and spent.reason is LockReason.BUDGET_SPENT
    leave = _grant(GrantKind.LEAVE, NOON - timedelta(minutes=1), 120)
    d = decide(POLICY, NOON, before, [leave])
    assert not d.locked and not d.minor_mode
    assert d.apps.verdict("org.game.Shooter").allowed
    assert not d.filter.block_categories and not d.filter.safesearch
    assert d.spending == POLICY.spending  # caps on the guardian's money still hold
    assert d.next_change is not None and d.next_change.kind is ChangeKind.MINOR_MODE
    assert d.next_change.at == leave.expires_at
    back = decide(POLICY, leave.expires_at, before, [leave])
    assert back.minor_mode and back.locked and back.reason is LockReason.BUDGET_SPENT


def test_time_used_outside_minor_mode_is_not_the_childs() -> None:
    start = NOON - timedelta(minutes=50)
    leave = _grant(GrantKind.LEAVE, start, 40)
    # 50 minutes of use, 40 of them by an adult: the child has used 10 of 60.
    d = decide(POLICY, NOON, _used(50), [leave])
    assert d.minor_mode and d.used_seconds == 10 * 60
    assert d.remaining_seconds == 50 * 60


def test_a_lock_ends_a_leave_period() -> None:
    leave = _grant(GrantKind.LEAVE, NOON - timedelta(minutes=5), 120, "leave")
    lock = _grant(GrantKind.LOCK, NOON - timedelta(minutes=1), 10, "lock")
    d = decide(POLICY, NOON, Usage(), [leave, lock])
    assert d.minor_mode and d.locked and d.reason is LockReason.GUARDIAN_LOCK
