"""Which refusals from the dashboard are permanent (the sync holds that upload back and
goes on) and which are worth asking again at once (the session restarts): RFC 9110's
meanings, pinned by status code rather than by our own table."""

from __future__ import annotations

import pytest

from agent.sync.http import ProblemError


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
def test_a_request_at_fault_is_a_permanent_refusal(status: int) -> None:
    assert ProblemError(status, "x", "y").permanent


@pytest.mark.parametrize("status", [401, 408, 425, 429, 500, 502, 503, 504])
def test_expired_credentials_timeouts_floods_and_server_faults_are_not(status: int) -> None:
    assert not ProblemError(status, "x", "y").permanent


def test_retry_after_is_read_from_the_problem_details_or_the_header() -> None:
    assert ProblemError(503, "busy", "later", extra={"retry_after": 30}).retry_after == 30.0
    assert ProblemError(503, "busy", "later").retry_after is None


RECORDS = [(seq, "seg", b"n", b"c") for seq in range(11, 21)]  # an upload of records 11..20


@pytest.mark.parametrize(("status", "bad", "sound"), [
    (422, 15, 4),    # 11..14 are vouched for by the checkpoint before 15: they go alone
    (422, 20, 9),    # only the last fails
    (422, 11, 0),    # the first fails: nothing to send alone
    (422, 21, 0),    # past the upload: not about these records
    (422, 5, 0),     # before it (a stale answer)
    (422, None, 0),  # no record named
    (503, 15, 0),    # the server's fault: not a verdict on any record
])
def test_the_sound_records_before_a_refused_one(status: int, bad: int | None, sound: int) -> None:
    from agent.sync.service import _sound_prefix

    extra = {} if bad is None else {"first_bad_seq": bad}
    assert _sound_prefix(ProblemError(status, "bad-chain", "x", extra=extra), RECORDS) == sound
    assert _sound_prefix(ProblemError(status, "bad-chain", "x", extra=extra), []) == 0
