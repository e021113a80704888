"""What the child reads: "back at" in the family's time zone, waits in minutes, and the
sentences built from real Decisions, in both languages, from the shipped catalogues."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.scenario import iso, policy

from agent.core.decide import decide
from agent.core.decision import AppBlockReason, LockReason, forced_lock
from agent.core.messages import BackAt, wait_minutes
from agent.core.usage import Interval, Usage
from agent.locale.messages import (
    Key,
    app_blocked,
    back_at,
    code_wait,
    lock_reason,
    message,
    time_up,
    warning,
)

SHANGHAI = "Asia/Shanghai"


def back(at: str, now: str) -> BackAt:
    return BackAt(iso(at, SHANGHAI), iso(now, SHANGHAI), SHANGHAI)


@pytest.mark.parametrize(
    ("at", "now", "zh", "en"),
    [
        ("2026-12-01T16:30", "2026-12-01T14:05", "16:30 再来吧。", "Back at 16:30."),
        # 07:00 in Shanghai is 23:00 UTC the day before: still "tomorrow" for the family.
        ("2026-12-02T07:00", "2026-12-01T23:30", "明天 07:00 再来吧。", "Back tomorrow at 07:00."),
        ("2026-12-02T00:00", "2026-12-01T20:00", "明天 00:00 再来吧。", "Back tomorrow at 00:00."),
        ("2026-12-04T08:00", "2026-12-01T20:00", "星期五 08:00 再来吧。", "Back on Friday at 08:00."),
        ("2026-12-09T08:00", "2026-12-01T20:00", "12月9日 08:00 再来吧。", "Back on 9/12 at 08:00."),
    ],
)
def test_back_at_in_the_policy_timezone(at: str, now: str, zh: str, en: str) -> None:
    when = back(at, now)
    assert lock_reason(LockReason.GUARDIAN_LOCK, "zh-CN", when) == f"家长暂时锁定了设备。{zh}"
    assert lock_reason(LockReason.GUARDIAN_LOCK, "en", when) == f"Your guardian has locked the device for now. {en}"


def test_the_zone_is_the_policys_not_utc() -> None:
    # The same instants told in New York: 18:00 the same day, not tomorrow.
    when = BackAt(iso("2026-12-02T07:00", SHANGHAI), iso("2026-12-01T23:30", SHANGHAI), "America/New_York")
    assert lock_reason(LockReason.CURFEW, "en", when) == "It is night-time rest. Back at 18:00."


def test_a_lock_from_decide_ending_today() -> None:
    pol = policy(schedule={"every_day": ["16:30-21:00"]}, waive=["curfew"])
    d = decide(pol, iso("2026-12-01T14:05"), Usage())
    assert d.locked and d.reason is LockReason.OUTSIDE_WINDOW
    assert time_up(LockReason.OUTSIDE_WINDOW, "zh-CN", lock_screen=True, emergency_only=False,
                   back=back_at(d)) == "现在不是可以使用的时间段。16:30 再来吧。"
    assert time_up(LockReason.OUTSIDE_WINDOW, "en", lock_screen=False, emergency_only=False,
                   back=back_at(d)) == ("This is not one of your allowed times. Back at 16:30. "
                                        "Calls, emergency and the learning apps your guardian chose still work.")


def test_a_lock_from_decide_ending_tomorrow() -> None:
    # The 8-12 band's hour a day is spent at 17:00; the curfew holds until 06:00.
    d = decide(policy(), iso("2026-11-23T17:00"),
               Usage(active=(Interval(iso("2026-11-23T16:00"), iso("2026-11-23T17:00")),)))
    assert d.locked and d.reason is LockReason.BUDGET_SPENT
    assert time_up(LockReason.BUDGET_SPENT, "zh-CN", lock_screen=False, emergency_only=False,
                   back=back_at(d)) == ("今天的使用时间已经用完了。明天 06:00 再来吧。"
                                        "现在只能使用电话、紧急求助和家长允许的学习应用。")


def test_a_warning_says_when_the_coming_lock_ends() -> None:
    now = iso("2026-11-23T17:25")
    d = decide(policy(), now, Usage(active=(Interval(iso("2026-11-23T16:30"), now),)))
    assert d.warning_due == 5
    assert warning(5, "en", back_at(d)) == "5 minutes left. Time to finish up. Back tomorrow at 06:00."


def test_no_back_at_when_nothing_says_when() -> None:
    # A full disk locks until the cause is fixed: no time to promise.
    d = forced_lock(decide(policy(), iso("2026-11-23T16:00"), Usage()), LockReason.STORAGE_FAILURE)
    assert back_at(d) is None
    assert time_up(LockReason.STORAGE_FAILURE, "en", lock_screen=True, emergency_only=False,
                   back=back_at(d)) == (
        "The device's storage is full, so it is locked. Ask your guardian to free some space.")


@pytest.mark.parametrize(
    ("seconds", "minutes", "zh", "en"),
    [
        (1, 1, "错误次数太多，请 1 分钟后再试。", "Too many wrong codes. Try again in 1 minute."),
        (30, 1, "错误次数太多，请 1 分钟后再试。", "Too many wrong codes. Try again in 1 minute."),
        (60, 1, "错误次数太多，请 1 分钟后再试。", "Too many wrong codes. Try again in 1 minute."),
        (61, 2, "错误次数太多，请 2 分钟后再试。", "Too many wrong codes. Try again in 2 minutes."),
        (960, 16, "错误次数太多，请 16 分钟后再试。", "Too many wrong codes. Try again in 16 minutes."),
    ],
)
def test_the_code_wait_is_in_minutes_rounded_up(seconds: int, minutes: int, zh: str, en: str) -> None:
    wait = timedelta(seconds=seconds)
    assert wait_minutes(wait) == minutes
    assert code_wait(wait, "zh-CN") == zh
    assert code_wait(wait, "en") == en


def test_counts_take_the_languages_plural_forms() -> None:
    assert message(Key.REQUEST_APPROVED, "en", minutes=1) == "Your guardian said yes: 1 more minute."
    assert message(Key.REQUEST_APPROVED, "en", minutes=15) == "Your guardian said yes: 15 more minutes."
    assert message(Key.REQUEST_APPROVED, "zh-CN", minutes=1) == "家长同意了：多了 1 分钟。"
    assert warning(5, "en") == "5 minutes left. Time to finish up."
    assert warning(1, "zh-CN") == "还剩 1 分钟，请保存并结束。"
    assert warning(5, "zh-CN", back("2026-12-02T06:00", "2026-12-01T17:25")) == (
        "还剩 5 分钟，请准备结束。明天 06:00 再来吧。")


def test_unknown_language_falls_back_to_chinese() -> None:
    assert message(Key.CODE_WRONG, "fr") == "家长码不正确。"
    assert app_blocked(AppBlockReason.GAME_HOURS, "de") == "现在不是游戏时间。"


def test_an_unknown_key_or_a_missing_parameter_raises() -> None:
    with pytest.raises(KeyError):
        message("no-such-key", "en")
    with pytest.raises(KeyError):
        message(Key.PAIRING_CODE, "en")
    with pytest.raises(KeyError):
        message(Key.WARNING, "en")  # the count itself is missing


def test_the_decision_carries_the_childs_language() -> None:
    """The exec gate has no policy: it tells the child in the Decision's language."""
    assert decide(policy(enforcement={"language": "en"}), iso("2026-11-23T16:00"), Usage()).language == "en"
    assert decide(policy(), iso("2026-11-23T16:00"), Usage()).language == "zh-CN"
