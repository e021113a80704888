"""The guardian code's rules (the child's messages: tests/unit/locale)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.core import guardian_code as gc

# --------------------------------------------------------------------------- guardian code

SECRET = bytes(range(32))
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def test_code_shape_and_rotation() -> None:
    a = gc.code_at(SECRET, T0)
    b = gc.code_at(SECRET, T0 + timedelta(seconds=30))
    assert len(a) == 8 and a.isdigit() and a != b
    assert gc.code_at(SECRET, T0 + timedelta(seconds=29)) == a  # same 30 s step
    assert gc.code_at(b"x" * 32, T0) != a  # another secret, another code


def test_rfc_4226_truncation_matches_a_known_vector() -> None:
    # RFC 6238 appendix B, SHA-256 secret "12345678901234567890123456789012", T=59 s:
    # 8-digit TOTP 46119246.
    secret = b"12345678901234567890123456789012"
    assert gc.code_at(secret, datetime.fromtimestamp(59, UTC)) == "46119246"


def test_valid_code_accepted_once() -> None:
    code = gc.code_at(SECRET, T0)
    first = gc.check(SECRET, code, T0 + timedelta(seconds=5), gc.CodeState())
    assert first.outcome is gc.Outcome.ACCEPTED
    again = gc.check(SECRET, code, T0 + timedelta(seconds=10), first.state)
    assert again.outcome is gc.Outcome.REUSED
    # The previous step's code is older than the used one: refused too.
    older = gc.code_at(SECRET, T0 - timedelta(seconds=30))
    assert gc.check(SECRET, older, T0 + timedelta(seconds=10), first.state).outcome is gc.Outcome.REUSED


def test_drift_of_one_step_either_way() -> None:
    state = gc.CodeState()
    for delta, ok in [(-30, True), (30, True), (-60, False), (60, False)]:
        code = gc.code_at(SECRET, T0 + timedelta(seconds=delta))
        outcome = gc.check(SECRET, code, T0, state).outcome
        assert (outcome is gc.Outcome.ACCEPTED) is ok, delta


def test_five_wrong_codes_trigger_the_back_off() -> None:
    right = gc.code_at(SECRET, T0)
    wrong = "00000000" if right != "00000000" else "11111111"
    state = gc.CodeState()
    for n in range(1, 5):
        attempt = gc.check(SECRET, wrong, T0, state)
        assert attempt.outcome is gc.Outcome.WRONG and attempt.retry_after == timedelta(0), n
        state = attempt.state
    fifth = gc.check(SECRET, wrong, T0, state)
    assert fifth.outcome is gc.Outcome.WRONG and fifth.retry_after == timedelta(seconds=30)
    # Even the right code is not checked while waiting.
    blocked = gc.check(SECRET, right, T0 + timedelta(seconds=10), fifth.state)
    assert blocked.outcome is gc.Outcome.WAIT and blocked.retry_after == timedelta(seconds=20)
    assert blocked.state == fifth.state
    # After the wait a wrong code doubles the wait; the right one is accepted and resets.
    later = T0 + timedelta(seconds=31)
    sixth = gc.check(SECRET, wrong, later, fifth.state)
    assert sixth.retry_after == timedelta(seconds=60)
    after = later + timedelta(seconds=61)
    ok = gc.check(SECRET, gc.code_at(SECRET, after), after, sixth.state)
    assert ok.outcome is gc.Outcome.ACCEPTED and ok.state.failures == 0


def test_back_off_is_capped() -> None:
    assert gc.backoff(4) == timedelta(0)
    assert gc.backoff(5) == timedelta(seconds=30)
    assert gc.backoff(7) == timedelta(seconds=120)
    assert gc.backoff(10_000) == timedelta(hours=1)


@pytest.mark.parametrize("bad", ["", "1234567", "123456789", "1234567a", "１２３４５６７８", " 12345678"])
def test_malformed_codes_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="8 digits"):
        gc.check(SECRET, bad, T0, gc.CodeState())


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        gc.code_at(b"short", T0)
