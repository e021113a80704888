"""Every sentence the child sees: its key, and how sentences are put together.

The words live in gettext catalogues (agent/locale, one `.po` per language), so
translators work on them with their usual tools; this module holds what is not a
translator's: the keys (`Key`, and `lock.<reason>` / `app.<reason>` named after the enums),
which keys take a count (they use gettext's plural forms), and the logic that picks and
joins sentences ("back at 16:30" or "back tomorrow at 07:00"). It never reads a file: the
caller passes a `Catalogue` (agent.locale.messages loads them), so the core stays pure.
A key not listed here, or a missing parameter, is a programming error and raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from agent.core.calendar import zone
from agent.core.decision import AppBlockReason, Decision, LockReason

DEFAULT_LANGUAGE = "zh-CN"
DOMAIN = "minormode"  # the gettext domain: agent/locale/<lang>/LC_MESSAGES/minormode.po


class Key(StrEnum):
    WARNING = "warning"  # {minutes}, plural
    WARNING_ONE = "warning_one"
    REST_REMINDER = "rest_reminder"  # {minutes}, plural
    TIME_UP_TITLE = "time_up_title"
    WARNING_TITLE = "warning_title"
    NOTICE_TITLE = "notice_title"
    REQUEST_SENT = "request_sent"
    REQUEST_APPROVED = "request_approved"  # {minutes}, plural
    REQUEST_DENIED = "request_denied"
    REPORT_SENT = "report_sent"
    CODE_ACCEPTED = "code_accepted"  # {minutes}, plural
    CODE_WRONG = "code_wrong"
    CODE_USED = "code_used"
    CODE_WAIT = "code_wait"  # {minutes}, plural
    CODE_NOT_PAIRED = "code_not_paired"
    TOO_MANY_REQUESTS = "too_many_requests"
    TIME_UP_LIMITED = "time_up_limited"  # appended to the reason in the limited mode
    TIME_UP_EMERGENCY_ONLY = "time_up_emergency_only"  # in a curfew or a guardian's lock
    ASK_MORE_TIME = "ask_more_time"
    REPORT_ACTION = "report_action"
    APP_BLOCKED_TITLE = "app_blocked_title"
    PAIRING_TITLE = "pairing_title"
    PAIRING_CODE = "pairing_code"  # {code}
    PAIRING_SAS = "pairing_sas"  # {sas}
    PAIRING_SAME = "pairing_same"
    PAIRING_DIFFERENT = "pairing_different"
    PAIRED = "paired"
    BACK_TODAY = "back_today"  # {time}
    BACK_TOMORROW = "back_tomorrow"  # {time}
    BACK_WEEKDAY = "back_weekday"  # {weekday} {time}: two to six days ahead
    BACK_DATE = "back_date"  # {month} {day} {time}: a week or more ahead
    SENTENCES = "sentences"  # {first} {second}: how two sentences are joined
    APP_STOPPED_SPENT = "app_stopped_spent"  # {app}: the exec gate refused or stopped it
    APP_STOPPED = "app_stopped"  # {app}
    PROGRAM_STOPPED = "program_stopped"  # the same for a program no desktop entry names


def lock_key(reason: LockReason) -> str:
    return f"lock.{reason.value}"


def app_key(reason: AppBlockReason) -> str:
    return f"app.{reason.value}"


def weekday_key(weekday: int) -> str:
    """Monday is 0, as in `date.weekday()`."""
    return f"weekday.{weekday}"


# Keys whose sentence depends on a count: the catalogue gives one form per plural form of
# the language (gettext's msgid_plural/msgstr[n]); the value names the count parameter.
COUNTED: Mapping[str, str] = {
    Key.WARNING: "minutes",
    Key.REST_REMINDER: "minutes",
    Key.REQUEST_APPROVED: "minutes",
    Key.CODE_ACCEPTED: "minutes",
    Key.CODE_WAIT: "minutes",
}

KEYS = frozenset({*(k.value for k in Key), *(lock_key(r) for r in LockReason),
                  *(app_key(r) for r in AppBlockReason), *(weekday_key(d) for d in range(7))})


class Catalogue(Protocol):
    """One language's translations (`gettext.GNUTranslations` is one)."""

    def gettext(self, message: str, /) -> str: ...

    def ngettext(self, msgid1: str, msgid2: str, n: int, /) -> str: ...


@dataclass(frozen=True)
class BackAt:
    """When the device opens again, seen from `now`, told in the policy's `timezone`."""

    at: datetime
    now: datetime
    timezone: str


def back_at(decision: Decision) -> BackAt | None:
    """When the device opens again, if the Decision knows (within its horizon): the end of
    the lock in force, or, unlocked, of the lock coming next (what a warning says)."""
    at = decision.unlock_at if decision.locked else decision.reopens_at
    return None if at is None else BackAt(at, decision.at, decision.timezone)


def message(catalogue: Catalogue, key: str, **params: object) -> str:
    """The sentence for `key`, its `{parameters}` filled in."""
    if key not in KEYS:
        raise KeyError(key)
    count = COUNTED.get(key)
    text = catalogue.gettext(key) if count is None else catalogue.ngettext(key, key, _count(params, count))
    return text.format(**params)


def _count(params: Mapping[str, object], name: str) -> int:
    value = params[name]
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def sentences(catalogue: Catalogue, *parts: str) -> str:
    """Sentences joined as the language writes them (a space in English, none in Chinese)."""
    text = ""
    for part in parts:
        text = part if not text else message(catalogue, Key.SENTENCES, first=text, second=part)
    return text


def back_text(catalogue: Catalogue, back: BackAt) -> str:
    """ "Back at 16:30", "Back tomorrow at 07:00": 24-hour time in the policy's zone."""
    tz = zone(back.timezone)
    local = back.at.astimezone(tz)
    days = (local.date() - back.now.astimezone(tz).date()).days
    time = f"{local:%H:%M}"
    if days <= 0:
        return message(catalogue, Key.BACK_TODAY, time=time)
    if days == 1:
        return message(catalogue, Key.BACK_TOMORROW, time=time)
    if days < 7:
        weekday = message(catalogue, weekday_key(local.weekday()))
        return message(catalogue, Key.BACK_WEEKDAY, weekday=weekday, time=time)
    return message(catalogue, Key.BACK_DATE, month=local.month, day=local.day, time=time)


def _with_back(catalogue: Catalogue, text: str, back: BackAt | None) -> str:
    return text if back is None else sentences(catalogue, text, back_text(catalogue, back))


def warning(catalogue: Catalogue, minutes: int, back: BackAt | None = None) -> str:
    text = message(catalogue, Key.WARNING_ONE) if minutes == 1 else message(catalogue, Key.WARNING,
                                                                            minutes=minutes)
    return _with_back(catalogue, text, back)


def lock_reason(catalogue: Catalogue, reason: LockReason, back: BackAt | None = None) -> str:
    return _with_back(catalogue, message(catalogue, lock_key(reason)), back)


def time_up(catalogue: Catalogue, reason: LockReason, *, lock_screen: bool, emergency_only: bool,
            back: BackAt | None = None) -> str:
    """What the time-up screen says: the reason, when it ends and, in the limited mode, what
    still works."""
    text = lock_reason(catalogue, reason, back)
    if lock_screen:
        return text
    still = Key.TIME_UP_EMERGENCY_ONLY if emergency_only else Key.TIME_UP_LIMITED
    return sentences(catalogue, text, message(catalogue, still))


def app_blocked(catalogue: Catalogue, reason: AppBlockReason) -> str:
    return message(catalogue, app_key(reason))


def app_stopped(catalogue: Catalogue, app: str | None, reason: str | None) -> str:
    """What the exec gate tells the child when it refuses or stops `app` (its name; None
    for a program no desktop entry names) for `reason` (an `AppBlockReason` value)."""
    if app is None:
        return message(catalogue, Key.PROGRAM_STOPPED)
    spent = reason == AppBlockReason.LIMIT_SPENT.value
    return message(catalogue, Key.APP_STOPPED_SPENT if spent else Key.APP_STOPPED, app=app)


def wait_minutes(wait: timedelta) -> int:
    """A wait told in whole minutes, rounded up: 30 s is "1 minute", never "0 minutes"."""
    return max(1, math.ceil(wait.total_seconds() / 60))


def code_wait(catalogue: Catalogue, wait: timedelta) -> str:
    return message(catalogue, Key.CODE_WAIT, minutes=wait_minutes(wait))
