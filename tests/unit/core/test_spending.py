"""Spending rules: caps are inclusive, one minor unit over fails, bad input is named."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.policy import SpendingCaps
from agent.core.spending import Reason, SpendingError, Verdict, judge, period_bounds

CAPS = SpendingCaps(currency="CNY", per_transaction=5000, per_day=8000, per_month=20000,
                    ask_above=3000)


@pytest.mark.parametrize(
    ("amount", "today", "month", "verdict", "reason"),
    [
        (3000, 0, 0, Verdict.APPROVED, Reason.WITHIN_CAPS),  # at the ask threshold: no asking
        (3001, 0, 0, Verdict.PENDING, Reason.ASK_GUARDIAN),
        (5000, 0, 0, Verdict.PENDING, Reason.ASK_GUARDIAN),  # at the transaction cap
        (5001, 0, 0, Verdict.DENIED, Reason.OVER_TRANSACTION_CAP),
        (1000, 7000, 7000, Verdict.APPROVED, Reason.WITHIN_CAPS),  # exactly the day cap
        (1001, 7000, 7000, Verdict.DENIED, Reason.OVER_DAILY_CAP),
        (1000, 0, 19000, Verdict.APPROVED, Reason.WITHIN_CAPS),  # exactly the month cap
        (1001, 0, 19000, Verdict.DENIED, Reason.OVER_MONTHLY_CAP),
        (1, 0, 0, Verdict.APPROVED, Reason.WITHIN_CAPS),
    ],
)
def test_caps(amount: int, today: int, month: int, verdict: Verdict, reason: Reason) -> None:
    d = judge(CAPS, amount, "CNY", today, month)
    assert (d.verdict, d.reason) == (verdict, reason)


def test_band_without_paid_services_denies_everything() -> None:
    none = SpendingCaps("CNY", per_transaction=0, per_day=0, per_month=0, ask_above=0)
    assert judge(none, 1, "CNY", 0, 0).reason is Reason.NO_PAID_SERVICES


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        (0, "CNY", "bad_amount"),
        (-5, "CNY", "bad_amount"),
        (1.5, "CNY", "bad_amount"),
        (True, "CNY", "bad_amount"),
        (10**13, "CNY", "bad_amount"),
        (100, "cny", "bad_currency"),
        (100, "YUAN", "bad_currency"),
        (100, "", "bad_currency"),
        (100, "USD", "wrong_currency"),
    ],
)
def test_bad_amounts_and_currencies(amount: object, currency: str, code: str) -> None:
    with pytest.raises(SpendingError) as err:
        judge(CAPS, amount, currency, 0, 0)  # type: ignore[arg-type]
    assert err.value.code == code
    assert str(amount) in str(err.value) or currency in str(err.value) or code == "bad_currency"


def test_period_bounds_use_the_policy_timezone() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    p = period_bounds(datetime(2026, 1, 31, 16, 30, tzinfo=UTC), tz)  # 00:30 on Feb 1 there
    assert p.day_start == datetime(2026, 2, 1, tzinfo=tz)
    assert p.day_end == datetime(2026, 2, 2, tzinfo=tz)
    assert p.month_start == datetime(2026, 2, 1, tzinfo=tz)
    assert p.month_end == datetime(2026, 3, 1, tzinfo=tz)


def test_period_bounds_across_dst_and_december() -> None:
    tz = ZoneInfo("Europe/Berlin")
    p = period_bounds(datetime(2026, 3, 29, 12, tzinfo=UTC), tz)  # the 23-hour day
    assert p.day_end.timestamp() - p.day_start.timestamp() == 23 * 3600
    q = period_bounds(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), tz)  # already Jan 1 there
    assert q.month_start == datetime(2027, 1, 1, tzinfo=tz)
    with pytest.raises(ValueError, match="aware"):
        period_bounds(datetime(2026, 1, 1), tz)


@given(
    per_tx=st.integers(0, 10_000),
    per_day=st.integers(0, 20_000),
    per_month=st.integers(0, 50_000),
    ask=st.integers(0, 10_000),
    days=st.lists(st.lists(st.integers(1, 12_000), max_size=8), max_size=10),
)
def test_caps_are_never_exceeded(
    per_tx: int, per_day: int, per_month: int, ask: int, days: list[list[int]]
) -> None:
    """Whatever the requests, what is let through (approved or waiting) stays in every cap."""
    caps = SpendingCaps("CNY", per_tx, per_day, per_month, ask)
    month = 0
    for requests in days:
        today = 0
        for amount in requests:
            d = judge(caps, amount, "CNY", today, month)
            if d.verdict is not Verdict.DENIED:
                assert caps.paid_allowed and amount <= per_tx
                assert (d.verdict is Verdict.PENDING) == (amount > ask)
                today += amount
                month += amount
            assert today <= per_day and month <= per_month
