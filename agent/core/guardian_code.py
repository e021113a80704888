"""The offline guardian override: a rotating code the guardian's phone shows, typed on the tablet.

Like TOTP (RFC 6238) but with HMAC-SHA256 and 8 digits: code = truncate(HMAC(secret,
counter)) where counter = unix time // 30 s. The secret is shared once at pairing, so the
code works with no network. A code is accepted one step early or late (clock drift between
the two devices), at most once: after a code is used, no code of that step or an earlier
one is accepted again. After five wrong codes each further try waits, doubling from 30 s up
to an hour, so guessing 10^8 codes is hopeless. Pure: the caller passes `now` and the state
and stores the state it gets back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

DIGITS = 8
STEP_SECONDS = 30
DRIFT_STEPS = 1
FREE_FAILURES = 5
FIRST_WAIT = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
MIN_SECRET_BYTES = 16
CODE_FORMAT = re.compile(r"[0-9]{8}")


def counter_at(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp()) // STEP_SECONDS


def code_for_counter(secret: bytes, counter: int) -> str:
    """RFC 4226 dynamic truncation over HMAC-SHA256, `DIGITS` decimal digits."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"guardian code secret: {len(secret)} bytes, need at least {MIN_SECRET_BYTES}")
    digest = hmac.new(secret, counter.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFF_FFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def code_at(secret: bytes, now: datetime) -> str:
    """The code the guardian's app shows at `now`."""
    return code_for_counter(secret, counter_at(now))


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    REUSED = "reused"  # right code, already used (or older than one used)
    WAIT = "wait"  # too many wrong codes: not even checked


@dataclass(frozen=True)
class CodeState:
    last_used: int | None = None  # counter of the last accepted code
    failures: int = 0  # wrong codes in a row
    wait_until: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    state: CodeState
    retry_after: timedelta = timedelta(0)  # WAIT and WRONG past the free tries: how long


def parse_secret(text: str) -> bytes:
    """The secret's one written form: hex (whitespace around it ignored), at least
    `MIN_SECRET_BYTES` bytes. Raises ValueError naming the problem."""
    clean = text.strip()
    try:
        secret = bytes.fromhex(clean)
    except ValueError:
        raise ValueError("a guardian code secret is written as hex") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a guardian code secret has at least {MIN_SECRET_BYTES} bytes, "
                         f"this one {len(secret)}")
    return secret


def valid_format(code: str) -> bool:
    return CODE_FORMAT.fullmatch(code) is not None


def backoff(failures: int) -> timedelta:
    """How long to wait after `failures` wrong codes in a row (zero for the first five)."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(FIRST_WAIT * (1 << min(failures - FREE_FAILURES, 16)), LONGEST_WAIT)


def check(secret: bytes, code: str, now: datetime, state: CodeState) -> Attempt:
    """Judge one typed code; the returned state replaces `state` whatever the outcome."""
    if not valid_format(code):
        raise ValueError(f"guardian code must be {DIGITS} digits")
    if state.wait_until is not None and now < state.wait_until:
        return Attempt(Outcome.WAIT, state, state.wait_until - now)
    current = counter_at(now)
    matched: int | None = None
    for counter in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_for_counter(secret, counter), code):
            matched = counter
    if matched is not None and (state.last_used is None or matched > state.last_used):
        return Attempt(Outcome.ACCEPTED, CodeState(last_used=matched))
    if matched is not None:
        return Attempt(Outcome.REUSED, state)
    failures = state.failures + 1
    wait = backoff(failures)
    new = replace(state, failures=failures, wait_until=now + wait if wait else None)
    return Attempt(Outcome.WRONG, new, wait)
