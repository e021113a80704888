"""`Decision.reopens_at`, what a warning tells the child ("back at 16:30"), is the
`unlock_at` the agent will compute when the coming lock starts: checked by playing the
continuous use `decide` assumes up to the lock and deciding again there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from support.scenario import iso, policy

from agent.core.decide import decide
from agent.core.decision import LockReason
from agent.core.policy import Policy
from agent.core.usage import Interval, Usage

MONDAY = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # 00:00 Monday 23 November in Shanghai
POLICIES = [
    policy(),  # the 8-12 band: an hour a day, a curfew 22:00-06:00
    policy(budget={"daily_minutes": 90}, schedule={"every_day": ["07:00-12:00", "14:00-21:30"]}),
    policy(rest={"enabled": True, "after_minutes": 30, "break_minutes": 10, "enforce": True},
           budget={"daily_minutes": 240}),
    policy(schedule={"every_day": ["16:30-21:00"]}, waive=["curfew"]),
]


def reopen_matches_the_lock(pol: Policy, now: datetime, used_minutes: int) -> LockReason | None:
    usage = Usage(active=(Interval(now - timedelta(minutes=used_minutes), now),) if used_minutes else ())
    d = decide(pol, now, usage)
    if d.locked or d.remaining_seconds is None:
        assert d.reopens_at is None
        return None
    lock_at = now + timedelta(seconds=d.remaining_seconds)
    start = now - timedelta(minutes=used_minutes)
    at_lock = decide(pol, lock_at, Usage(active=(Interval(start, lock_at),)))
    assert at_lock.locked, (now, lock_at)
    assert d.reopens_at == at_lock.unlock_at, (now, used_minutes, at_lock.reason)
    return at_lock.reason


def test_a_budget_warning_says_back_tomorrow_after_the_curfew() -> None:
    now = iso("2026-11-23T17:25")
    d = decide(policy(), now, Usage(active=(Interval(iso("2026-11-23T16:30"), now),)))
    assert d.warning_due == 5
    assert d.reopens_at == iso("2026-11-24T06:00")
    assert reopen_matches_the_lock(policy(), now, 55) is LockReason.BUDGET_SPENT


def test_a_rest_break_warning_says_back_after_the_break() -> None:
    pol = POLICIES[2]
    now = iso("2026-11-23T16:25")
    d = decide(pol, now, Usage(active=(Interval(iso("2026-11-23T16:00"), now),)))
    assert d.reopens_at == iso("2026-11-23T16:40")  # the lock at 16:30, then 10 minutes' break
    assert reopen_matches_the_lock(pol, now, 25) is LockReason.REST_BREAK


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(POLICIES))), st.integers(0, 2 * 24 * 60 - 1), st.integers(0, 240))
def test_reopens_at_is_the_coming_locks_unlock_at(which: int, minute: int, used: int) -> None:
    now = MONDAY + timedelta(minutes=minute)
    used = min(used, minute)  # the use started on Monday, at the earliest
    reopen_matches_the_lock(POLICIES[which], now, used)
