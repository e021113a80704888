"""Every sentence the child sees, in one catalogue, in zh-CN and en.

Adapters never write user-facing text themselves: they call `message(key, lang, **params)`
with a key from `Key` (lock reasons and app-block reasons have keys named after their enum
values). An unknown language falls back to zh-CN, the product's default; a missing key or
parameter is a programming error and raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from agent.core.decision import AppBlockReason, LockReason

DEFAULT_LANGUAGE = "zh-CN"


class Key(StrEnum):
    WARNING = "warning"  # {minutes}
    WARNING_ONE = "warning_one"
    REST_REMINDER = "rest_reminder"  # {minutes}
    TIME_UP_TITLE = "time_up_title"
    WARNING_TITLE = "warning_title"
    NOTICE_TITLE = "notice_title"
    REQUEST_SENT = "request_sent"
    REQUEST_APPROVED = "request_approved"  # {minutes}
    REQUEST_DENIED = "request_denied"
    REPORT_SENT = "report_sent"
    CODE_ACCEPTED = "code_accepted"  # {minutes}
    CODE_WRONG = "code_wrong"
    CODE_USED = "code_used"
    CODE_WAIT = "code_wait"  # {seconds}
    CODE_NOT_PAIRED = "code_not_paired"
    TOO_MANY_REQUESTS = "too_many_requests"
    ASK_MORE_TIME = "ask_more_time"
    REPORT_ACTION = "report_action"
    APP_BLOCKED_TITLE = "app_blocked_title"


def lock_key(reason: LockReason) -> str:
    return f"lock.{reason.value}"


def app_key(reason: AppBlockReason) -> str:
    return f"app.{reason.value}"


CATALOGUE: Mapping[str, Mapping[str, str]] = {
    "zh-CN": {
        Key.WARNING: "还剩 {minutes} 分钟,请准备结束。",
        Key.WARNING_ONE: "还剩 1 分钟,请保存并结束。",
        Key.REST_REMINDER: "你已经连续使用 {minutes} 分钟了,休息一下眼睛吧。",
        Key.TIME_UP_TITLE: "时间到了",
        Key.WARNING_TITLE: "时间快到了",
        Key.NOTICE_TITLE: "未成年人模式",
        Key.REQUEST_SENT: "已向家长申请更多时间。",
        Key.REQUEST_APPROVED: "家长同意了:多了 {minutes} 分钟。",
        Key.REQUEST_DENIED: "家长这次没有同意。",
        Key.REPORT_SENT: "已发送给家长,他们会尽快查看。",
        Key.CODE_ACCEPTED: "家长码正确:解锁 {minutes} 分钟。",
        Key.CODE_WRONG: "家长码不正确。",
        Key.CODE_USED: "这个家长码已经用过了。",
        Key.CODE_WAIT: "错误次数太多,请 {seconds} 秒后再试。",
        Key.CODE_NOT_PAIRED: "这台设备还没有和家长配对,不能使用家长码。",
        Key.TOO_MANY_REQUESTS: "已经有很多申请在等家长回复了,请稍后再试。",
        Key.ASK_MORE_TIME: "申请更多时间",
        Key.REPORT_ACTION: "求助 / 举报",
        Key.APP_BLOCKED_TITLE: "应用已被阻止",
        lock_key(LockReason.BUDGET_SPENT): "今天的使用时间已经用完了。",
        lock_key(LockReason.OUTSIDE_WINDOW): "现在不是可以使用的时间段。",
        lock_key(LockReason.CURFEW): "夜间休息时间,明天再用吧。",
        lock_key(LockReason.SCHOOL_HOURS): "上课时间,设备已锁定。",
        lock_key(LockReason.REST_BREAK): "休息时间到了,稍后再继续。",
        lock_key(LockReason.GUARDIAN_LOCK): "家长暂时锁定了设备。",
        app_key(AppBlockReason.NOT_ALLOWED): "家长还没有允许这个应用。",
        app_key(AppBlockReason.BLOCKED): "家长已阻止这个应用。",
        app_key(AppBlockReason.DEVICE_LOCKED): "设备已锁定,只能使用始终允许的应用。",
        app_key(AppBlockReason.LIMIT_SPENT): "这个应用今天的时间已经用完了。",
        app_key(AppBlockReason.GAME_HOURS): "现在不是游戏时间。",
        app_key(AppBlockReason.SCHOOL_HOURS): "上课时间只能使用学习应用。",
    },
    "en": {
        Key.WARNING: "{minutes} minutes left. Time to finish up.",
        Key.WARNING_ONE: "1 minute left. Save your work now.",
        Key.REST_REMINDER: "You have been on for {minutes} minutes. Rest your eyes for a bit.",
        Key.TIME_UP_TITLE: "Time is up",
        Key.WARNING_TITLE: "Time is almost up",
        Key.NOTICE_TITLE: "Minor mode",
        Key.REQUEST_SENT: "Your request for more time was sent to your guardian.",
        Key.REQUEST_APPROVED: "Your guardian said yes: {minutes} more minutes.",
        Key.REQUEST_DENIED: "Your guardian said no this time.",
        Key.REPORT_SENT: "Sent to your guardian. They will look at it soon.",
        Key.CODE_ACCEPTED: "Guardian code accepted: unlocked for {minutes} minutes.",
        Key.CODE_WRONG: "That guardian code is not right.",
        Key.CODE_USED: "That guardian code was already used.",
        Key.CODE_WAIT: "Too many wrong codes. Try again in {seconds} seconds.",
        Key.CODE_NOT_PAIRED: "This device is not paired with a guardian yet: no codes work.",
        Key.TOO_MANY_REQUESTS: "Many requests are already waiting for your guardian. Try later.",
        Key.ASK_MORE_TIME: "Ask for more time",
        Key.REPORT_ACTION: "Get help / report",
        Key.APP_BLOCKED_TITLE: "App blocked",
        lock_key(LockReason.BUDGET_SPENT): "Today's screen time is used up.",
        lock_key(LockReason.OUTSIDE_WINDOW): "This is not one of your allowed times.",
        lock_key(LockReason.CURFEW): "It is night-time rest. See you tomorrow.",
        lock_key(LockReason.SCHOOL_HOURS): "It is school time; the device is locked.",
        lock_key(LockReason.REST_BREAK): "Break time. You can continue after a rest.",
        lock_key(LockReason.GUARDIAN_LOCK): "Your guardian has locked the device for now.",
        app_key(AppBlockReason.NOT_ALLOWED): "Your guardian has not allowed this app yet.",
        app_key(AppBlockReason.BLOCKED): "Your guardian blocked this app.",
        app_key(AppBlockReason.DEVICE_LOCKED): "The device is locked; only always-allowed apps run.",
        app_key(AppBlockReason.LIMIT_SPENT): "This app's time for today is used up.",
        app_key(AppBlockReason.GAME_HOURS): "It is not game time now.",
        app_key(AppBlockReason.SCHOOL_HOURS): "During school hours only learning apps run.",
    },
}

LANGUAGES = frozenset(CATALOGUE)


def message(key: str, lang: str, **params: object) -> str:
    """The sentence for `key` in `lang` (zh-CN when the language is unknown)."""
    table = CATALOGUE.get(lang, CATALOGUE[DEFAULT_LANGUAGE])
    return table[key].format(**params)


def warning(minutes: int, lang: str) -> str:
    return message(Key.WARNING_ONE, lang) if minutes == 1 else message(Key.WARNING, lang, minutes=minutes)


def lock_reason(reason: LockReason, lang: str) -> str:
    return message(lock_key(reason), lang)


def app_blocked(reason: AppBlockReason, lang: str) -> str:
    return message(app_key(reason), lang)
