"""Simulated-clock scenarios: events at ISO times, expectations on the Decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.scenario import Scenario, iso, policy

from agent.core.decision import AppBlockReason, LockReason
from agent.core.policy import DefaultKey
from agent.store.events import EventKind

CALLS = ("org.example.Calls", frozenset({"Telephony"}))
GAME = ("org.example.Game", frozenset({"Game"}))
HOMEWORK = ("org.example.Homework", frozenset({"Education"}))


def test_active_time_counts_and_budget_locks(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")  # Monday
    s.active().at("2026-11-23T16:30").expect(locked=False, used_min=30, remaining_min=30)
    s.idle().at("2026-11-23T17:00").expect(used_min=30)  # idle time does not count
    s.active().at("2026-11-23T17:25").expect(warning=5, remaining_min=5)
    s.at("2026-11-23T17:29").expect(warning=1)
    s.at("2026-11-23T17:30").expect(locked=True, reason=LockReason.BUDGET_SPENT, used_min=60)
    d = s.decision
    assert d.unlock_at is not None
    assert d.unlock_at.isoformat() == "2026-11-23T22:00:00+00:00"  # 06:00 local, after the curfew


@pytest.mark.parametrize(
    ("window", "at", "locked"),
    [
        ("21:00-01:00", "2026-11-23T23:30", False),  # inside, after midnight not yet
        ("21:00-01:00", "2026-11-24T00:30", False),  # the window crossed midnight
        ("21:00-01:00", "2026-11-24T01:00", True),   # and ended
        ("21:00-01:00", "2026-11-23T20:59", True),
        ("00:00-24:00", "2026-11-23T03:00", False),  # the whole day
        ("06:00-06:30", "2026-11-23T06:15", False),
    ],
)
def test_midnight_crossing_windows(tmp_path: Path, window: str, at: str, locked: bool) -> None:
    pol = policy(schedule={"every_day": [window]}, waive=["curfew"])
    s = Scenario(tmp_path, pol, at)
    d = s.expect(locked=locked)
    if locked:
        assert d.reasons == (LockReason.OUTSIDE_WINDOW,)


def test_curfew_wins_over_a_window(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(schedule={"every_day": ["20:00-23:30"]}), "2026-11-23T21:59")
    s.expect(locked=False, remaining_min=1)  # the lock comes at the curfew, not the window end
    s.active().at("2026-11-23T22:00").expect(locked=True, reason=LockReason.CURFEW)


def test_curfew_lock_end_follows_the_policy_timezone_not_the_device(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T23:00")
    s.set_zone("America/New_York").expect(locked=True, reason=LockReason.CURFEW)
    assert s.agent.store.events(EventKind.TIMEZONE_CHANGE)


def test_dst_day_in_the_policy_timezone(tmp_path: Path) -> None:
    """Europe/Berlin springs forward on 2027-03-28: the local day has 23 hours, the budget
    still resets at local midnight and the curfew still starts at local 22:00."""
    # (the curfew waived: time in a lock does not count, and 01:00 is in the curfew)
    pol = policy(timezone="Europe/Berlin", budget={"daily_minutes": 120}, waive=["curfew"])
    s = Scenario(tmp_path, pol, "2027-03-28T01:00+01:00")
    s.active().at("2027-03-28T04:00+02:00")  # 01:00 CET to 04:00 CEST is 2 real hours
    d = s.expect(locked=True, reason=LockReason.BUDGET_SPENT, used_min=120)
    assert d.unlock_at is not None
    assert d.unlock_at.isoformat() == "2027-03-28T22:00:00+00:00"  # local midnight CEST
    s2 = Scenario(tmp_path / "b", policy(timezone="Europe/Berlin", waive=["daily_budget"]),
                  "2027-03-28T21:00+02:00")
    s2.expect(locked=False, remaining_min=60)  # the curfew at 22:00 local summer time


def test_dst_fall_back_day_has_25_hours(tmp_path: Path) -> None:
    pol = policy(timezone="Europe/Berlin", waive=["curfew", "rest", "daily_budget"])
    s = Scenario(tmp_path, pol, "2026-10-25T00:00+02:00")
    s.active().at("2026-10-25T23:59+01:00")
    d = s.expect(locked=False)
    assert d.used_seconds == 25 * 3600 - 60  # the local day had 25 hours


def test_always_allowed_apps_after_the_budget(tmp_path: Path) -> None:
    pol = policy(apps={"always_allowed": [HOMEWORK[0]]})
    s = Scenario(tmp_path, pol, "2026-11-23T16:00")
    s.active().at("2026-11-23T17:00").expect(locked=True, reason=LockReason.BUDGET_SPENT)
    apps = s.decision.apps
    assert apps.verdict(*CALLS).allowed
    assert apps.verdict(*HOMEWORK).allowed
    v = apps.verdict(*GAME)
    assert not v.allowed
    assert v.reason is AppBlockReason.DEVICE_LOCKED


EMERGENCY = ("org.example.Emergency", frozenset({"Emergency"}))


def test_time_up_is_the_limited_mode_calls_stay_and_nothing_counts(tmp_path: Path) -> None:
    """The Guide: calls, emergency and guardian-chosen education apps stay usable when time
    is up. The default is the limited mode: the screen is not locked, only those apps may
    run, and the open session uses no budget meanwhile."""
    pol = policy(apps={"always_allowed": [HOMEWORK[0]]})
    s = Scenario(tmp_path, pol, "2026-11-23T16:00")
    d = s.active().at("2026-11-23T17:00").expect(locked=True, reason=LockReason.BUDGET_SPENT)
    assert d.lock_screen is False and d.apps.emergency_only is False
    assert d.apps.verdict(*CALLS).allowed and d.apps.verdict(*HOMEWORK).allowed
    assert d.apps.verdict(*EMERGENCY).allowed and not d.apps.verdict(*GAME).allowed
    s.at("2026-11-23T18:00").expect(locked=True, used_min=60)  # the open session did not count
    s.bonus(10, "2026-11-23", "2026-11-23T19:00").expect(locked=False)
    s.at("2026-11-23T18:05").expect(locked=False, used_min=65)  # counting again


def test_a_curfew_keeps_only_the_emergency_set(tmp_path: Path) -> None:
    pol = policy(apps={"always_allowed": [HOMEWORK[0]]})
    d = Scenario(tmp_path, pol, "2026-11-23T22:30").expect(locked=True, reason=LockReason.CURFEW)
    assert d.apps.emergency_only and not d.lock_screen
    assert d.apps.verdict(*EMERGENCY).allowed
    for app in (CALLS, HOMEWORK, GAME):
        v = d.apps.verdict(*app)
        assert not v.allowed and v.reason is AppBlockReason.DEVICE_LOCKED, app


def test_a_full_lock_stays_a_policy_choice(tmp_path: Path) -> None:
    pol = policy(enforcement={"time_up": "lock"})
    s = Scenario(tmp_path, pol, "2026-11-23T16:00")
    d = s.active().at("2026-11-23T17:00").expect(locked=True, reason=LockReason.BUDGET_SPENT)
    assert d.lock_screen is True and d.apps.verdict(*CALLS).allowed  # behind the lock screen


def test_time_in_always_allowed_apps_does_not_use_the_budget(tmp_path: Path) -> None:
    pol = policy(apps={"always_allowed": [HOMEWORK[0]]})
    s = Scenario(tmp_path, pol, "2026-11-23T16:00")
    s.active().app(*HOMEWORK, running=True).at("2026-11-23T16:40").expect(used_min=0)
    s.app(*GAME, running=True).at("2026-11-23T16:50").expect(used_min=10)  # a budgeted app too
    s.app(*GAME, running=False).at("2026-11-23T17:00").expect(used_min=10)


def test_bonus_minutes_expire(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T17:00").expect(locked=True)
    s.bonus(20, "2026-11-23", "2026-11-23T17:10").expect(locked=False)
    s.at("2026-11-23T17:10").expect(locked=True, reason=LockReason.BUDGET_SPENT)  # expired unused part


def test_bonus_for_another_day_does_not_count_today(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T17:00")
    s.bonus(30, "2026-11-24", "2026-11-25T00:00").expect(locked=True)


def test_unlock_until_and_waiver_expire(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T22:30")
    s.expect(locked=True, reason=LockReason.CURFEW)
    s.unlock_until("2026-11-23T23:00").expect(locked=False, remaining_min=30)
    s.at("2026-11-23T23:00").expect(locked=True, reason=LockReason.CURFEW)
    s.waive(DefaultKey.CURFEW, "2026-11-23T23:30").expect(locked=False)
    s.at("2026-11-23T23:30").expect(locked=True)


def test_rest_reminder_after_30_minutes_and_reset_after_a_break(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(budget={"daily_minutes": 300}), "2026-11-23T16:00")
    s.active().at("2026-11-23T16:29").expect(reminder=False)
    s.at("2026-11-23T16:30").expect(reminder=True, locked=False)
    s.idle().at("2026-11-23T16:35").active().at("2026-11-23T16:36").expect(reminder=True)  # too short
    s.idle().at("2026-11-23T16:46").active().at("2026-11-23T16:47").expect(reminder=False)  # 10 min
    assert s.decision.continuous_seconds == 60


def test_enforced_rest_break_locks_then_unlocks(tmp_path: Path) -> None:
    pol = policy(rest={"enforce": True, "after_minutes": 30, "break_minutes": 10})
    s = Scenario(tmp_path, pol, "2026-11-23T16:00")
    s.active().at("2026-11-23T16:25").expect(remaining_min=5, warning=5)
    s.at("2026-11-23T16:30").expect(locked=True, reason=LockReason.REST_BREAK)
    s.idle().at("2026-11-23T16:39").expect(locked=True)
    d = s.at("2026-11-23T16:40").expect(locked=False)
    assert d.continuous_seconds == 0


def test_school_hours_education_only(tmp_path: Path) -> None:
    pol = policy(school={"enabled": True, "mode": "education_only"})
    s = Scenario(tmp_path, pol, "2026-11-23T10:00")
    d = s.expect(locked=False)
    assert d.apps.verdict(*HOMEWORK).allowed
    assert d.apps.verdict("org.example.Paint", frozenset({"Graphics"})).reason is AppBlockReason.SCHOOL_HOURS
    s.change_policy(school={"enabled": True, "mode": "lock"})
    s.expect(locked=True, reason=LockReason.SCHOOL_HOURS)
    s.change_policy(school={"enabled": True, "mode": "lock", "holidays": ["2026-11-23"]})
    s.expect(locked=False)


def test_game_hours_preset(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-27T19:59")  # Friday
    assert s.decision.apps.verdict(*GAME).reason is AppBlockReason.GAME_HOURS
    s.at("2026-11-27T20:00")
    assert s.decision.apps.verdict(*GAME).allowed
    s.at("2026-11-27T21:00")
    assert not s.decision.apps.verdict(*GAME).allowed


def test_per_app_limit(tmp_path: Path) -> None:
    pol = policy(apps={"limits": {"org.example.Paint": 15}}, budget={"daily_minutes": 120})
    s = Scenario(tmp_path, pol, "2026-11-23T16:00")
    s.active().app("org.example.Paint", frozenset({"Graphics"}), running=True)
    d = s.at("2026-11-23T16:10").expect(locked=False)
    assert d.next_change is not None
    assert d.next_change.at.isoformat() == "2026-11-23T08:15:00+00:00"  # the limit's end
    d = s.at("2026-11-23T16:15").expect(locked=False)
    assert d.apps.verdict("org.example.Paint", frozenset({"Graphics"})).reason is AppBlockReason.LIMIT_SPENT
    assert d.app_used_seconds["org.example.Paint"] == 15 * 60


def test_wall_clock_change_gains_nothing(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T17:00").expect(locked=True, reason=LockReason.BUDGET_SPENT)
    s.set_wall("2026-11-24T12:00").expect(locked=True, used_min=60)  # "tomorrow": no new budget
    s.set_wall("2026-11-23T09:00").expect(locked=True, used_min=60)
    assert len(s.agent.store.events(EventKind.CLOCK_JUMP)) == 2


def test_sleep_does_not_count_and_resume_counts(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T16:20").sleep_until("2026-11-23T17:20")
    s.expect(used_min=20)
    s.active().at("2026-11-23T17:30").expect(used_min=30)


def test_reboot_restores_the_days_usage(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T16:40")
    s.reboot("2026-11-23T16:45").expect(used_min=40, remaining_min=20)


def test_reboot_with_the_clock_set_back_gains_nothing(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T17:00").expect(locked=True)
    s.reboot("2026-11-23T17:05", wall="2026-11-22T17:05")  # "yesterday" after the reboot
    s.expect(locked=True, reason=LockReason.BUDGET_SPENT, used_min=60)
    assert s.agent.store.events(EventKind.CLOCK_JUMP)


def test_kill_loses_at_most_one_checkpoint(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T16:30")
    s.kill_and_restart()
    d = s.decision
    assert 30 * 60 - 10 <= d.used_seconds <= 30 * 60  # CHECKPOINT is 10 s


def test_a_new_day_resets_the_budget(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(waive=["curfew"]), "2026-11-23T23:00")
    s.active().at("2026-11-24T00:00").expect(used_min=0, locked=False)
    s.at("2026-11-24T01:00").expect(locked=True, used_min=60)


def test_a_small_ntp_correction_is_adopted_and_recorded(tmp_path: Path) -> None:
    """A clock a few minutes slow follows NTP forward (within the 15-minute allowance)."""
    s = Scenario(tmp_path, policy(), "2026-11-23T16:00")
    s.active().at("2026-11-23T16:30")
    s.ntp_sync("2026-11-23T16:40").expect(locked=False, used_min=30)
    s.at("2026-11-23T16:50").expect(used_min=40)
    assert [e.data["what"] for e in s.agent.store.events(EventKind.CLOCK_JUMP)] == ["wall_jump", "resync"]


def test_ntp_cannot_skip_to_a_fresh_budget_only_the_dashboards_signed_time_can(tmp_path: Path) -> None:
    """NTP is unauthenticated (the child may run the network): a three-day jump is refused
    and journalled; the same correction from the dashboard's signed time is adopted."""
    s = Scenario(tmp_path, policy(), "2026-11-20T16:00")  # the stale clock says Friday
    s.active().at("2026-11-20T17:00").expect(locked=True, reason=LockReason.BUDGET_SPENT)
    s.ntp_sync("2026-11-23T16:00").expect(locked=True, used_min=60)  # forged (or really Monday)
    kinds = [e.data["what"] for e in s.agent.store.events(EventKind.CLOCK_JUMP)]
    assert kinds == ["wall_jump", "resync_refused"]
    s.agent.clock.adopt_signed_time(iso("2026-11-23T16:00", s.tz), "the dashboard's signed time")
    s.agent.tick()
    s.expect(locked=False, used_min=0)
    assert [e.data["what"] for e in s.agent.store.events(EventKind.CLOCK_JUMP)][-1] == "resync"


def test_ntp_allowance_is_spent_across_syncs(tmp_path: Path) -> None:
    """Many small NTP steps add up to no more than the allowance."""
    s = Scenario(tmp_path, policy(waive=["curfew"]), "2026-11-23T16:00")
    for minutes in (10, 20):  # two 10-minute steps: the first fits, the second does not
        s.ntp_sync(f"2026-11-23T16:{minutes:02d}")
    kinds = [e.data["what"] for e in s.agent.store.events(EventKind.CLOCK_JUMP)]
    assert kinds.count("resync") == 1 and kinds.count("resync_refused") == 1


def test_a_wall_change_without_ntp_is_not_adopted(tmp_path: Path) -> None:
    s = Scenario(tmp_path, policy(), "2026-11-20T16:00")
    s.active().at("2026-11-20T17:00")
    s.set_wall("2026-11-23T16:00").expect(locked=True, used_min=60)


def test_retention_purges_usage_while_the_agent_keeps_running(tmp_path: Path) -> None:
    """The purge runs every hour of trusted time, not only at start: after the retention
    period, a day's usage is gone from the store without a restart."""
    s = Scenario(tmp_path, policy(retention_days=1, waive=["curfew"]), "2026-11-23T10:00")
    s.active().at("2026-11-23T10:30").idle()
    assert s.agent.store.interval_count() > 0
    s.at("2026-11-24T10:20")  # 24 h after the last use: within the period, and no purge yet
    assert s.agent.store.usage_since(iso("2026-11-23T00:00", s.tz)).active
    s.at("2026-11-24T11:40")  # one hourly purge later, the day is older than the period
    assert not s.agent.store.usage_since(iso("2026-11-23T00:00", s.tz)).active
