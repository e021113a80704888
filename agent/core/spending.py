"""Spending caps as a pure rule: may this purchase go ahead, wait for the guardian, or not?

No I/O and no clock: the ledger passes in what was already spent today and this month
(counted in the policy's timezone, see `period_bounds`) and gets a verdict back. Money is
an integer count of minor units of one ISO 4217 currency, never a float. Amounts exactly
at a cap pass; one minor unit over fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

from agent.core.policy import SpendingCaps

_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = 10**12
"""Far above any child's purchase; keeps every sum inside SQLite's 64-bit integers."""


class SpendingError(ValueError):
    """A purchase request that is malformed (bad amount or currency); nothing is changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Verdict(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    PENDING = "pending"


class Reason(StrEnum):
    WITHIN_CAPS = "within_caps"
    NO_PAID_SERVICES = "no_paid_services"
    OVER_TRANSACTION_CAP = "over_transaction_cap"
    OVER_DAILY_CAP = "over_daily_cap"
    OVER_MONTHLY_CAP = "over_monthly_cap"
    ASK_GUARDIAN = "ask_guardian"


@dataclass(frozen=True)
class SpendDecision:
    verdict: Verdict
    reason: Reason


def validate_request(caps: SpendingCaps, amount: object, currency: object) -> None:
    """Raise SpendingError naming what is wrong with `amount`/`currency`."""
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise SpendingError(
            "bad_currency", f"currency {currency!r} is not an ISO 4217 code (three capitals)"
        )
    if currency != caps.currency:
        raise SpendingError(
            "wrong_currency", f"currency {currency} does not match the policy's {caps.currency}"
        )
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise SpendingError("bad_amount", f"amount {amount!r} is not an integer of minor units")
    if amount <= 0:
        raise SpendingError("bad_amount", f"amount {amount} must be at least one minor unit")
    if amount > MAX_AMOUNT:
        raise SpendingError("bad_amount", f"amount {amount} is larger than {MAX_AMOUNT}")


def judge(
    caps: SpendingCaps, amount: int, currency: str, spent_today: int, spent_month: int
) -> SpendDecision:
    """Decide one purchase given what is already spent (approved or awaiting the guardian).

    Order matters only for the reason shown: the band's ban first, then the caps from the
    narrowest, then ask-to-buy.
    """
    validate_request(caps, amount, currency)
    if not caps.paid_allowed:
        return SpendDecision(Verdict.DENIED, Reason.NO_PAID_SERVICES)
    if amount > caps.per_transaction:
        return SpendDecision(Verdict.DENIED, Reason.OVER_TRANSACTION_CAP)
    if spent_today + amount > caps.per_day:
        return SpendDecision(Verdict.DENIED, Reason.OVER_DAILY_CAP)
    if spent_month + amount > caps.per_month:
        return SpendDecision(Verdict.DENIED, Reason.OVER_MONTHLY_CAP)
    if amount > caps.ask_above:
        return SpendDecision(Verdict.PENDING, Reason.ASK_GUARDIAN)
    return SpendDecision(Verdict.APPROVED, Reason.WITHIN_CAPS)


@dataclass(frozen=True)
class Periods:
    """The local day and month containing an instant, as UTC-comparable aware datetimes."""

    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime


def period_bounds(now: datetime, tz: tzinfo) -> Periods:
    """Local midnight to local midnight (DST-aware), and the first of the month to the next."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(tz)
    day = local.date()
    next_day = day + timedelta(days=1)
    first = day.replace(day=1)
    next_first = (first + timedelta(days=32)).replace(day=1)

    def midnight(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=tz)

    return Periods(midnight(day), midnight(next_day), midnight(first), midnight(next_first))
