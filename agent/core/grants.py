"""Grants: time-limited exceptions a guardian gives (bonus minutes, an unlock, a waiver),
and the child's requests for one that wait for the guardian's answer.

A grant always expires; an expired grant is ignored by `decide`, so a forgotten grant can
never turn into "unlimited".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from agent.core.policy import DefaultKey


class GrantKind(StrEnum):
    BONUS = "bonus"  # extra minutes on one local day's budget
    UNLOCK = "unlock"  # every time lock lifted until `expires_at`
    WAIVER = "waiver"  # one default (curfew, rest ...) lifted until `expires_at`


class GrantSource(StrEnum):
    GUARDIAN_CODE = "guardian_code"  # the offline rotating code typed on the device
    DASHBOARD = "dashboard"  # a signed message from the guardian's dashboard
    LOCAL_ADMIN = "local_admin"  # root on the device (support, tests)


@dataclass(frozen=True)
class Grant:
    id: str
    kind: GrantKind
    issued_at: datetime
    expires_at: datetime
    source: GrantSource
    minutes: int = 0  # BONUS only
    day: date | None = None  # BONUS only: the local day it adds to
    waives: DefaultKey | None = None  # WAIVER only

    def __post_init__(self) -> None:
        if self.expires_at <= self.issued_at:
            raise ValueError(f"grant {self.id}: expires_at must be after issued_at")
        if self.kind is GrantKind.BONUS and (self.minutes <= 0 or self.day is None):
            raise ValueError(f"grant {self.id}: a bonus needs minutes > 0 and a day")
        if self.kind is GrantKind.WAIVER and self.waives is None:
            raise ValueError(f"grant {self.id}: a waiver names the default it waives")

    def active_at(self, now: datetime) -> bool:
        return self.issued_at <= now < self.expires_at


@dataclass(frozen=True)
class TimeRequest:
    """The child asked for `minutes` more; pending until the guardian answers (maybe days
    later, so it outlives a restart)."""

    id: str
    minutes: int
    note: str
